"""The subprocess wrapper, on real programs: output, LC_ALL=C, failures, missing tools, deadlines."""

from __future__ import annotations

import asyncio
import os
import time

import pytest

from osd import tools
from osd.errors import NotSupported, Timeout, ToolFailed


def run(*argv: str, **kw):  # noqa: ANN003
    return asyncio.run(tools.run(list(argv), **kw))


def test_output_and_locale() -> None:
    result = run("sh", "-c", 'echo "$LC_ALL"; echo err >&2')
    assert result.stdout == "C\n" and result.stderr == "err\n" and result.returncode == 0


def test_input_is_passed() -> None:
    assert run("cat", input=b"hello").stdout == "hello"


def test_failure_carries_argv_exit_code_and_stderr() -> None:
    with pytest.raises(ToolFailed) as err:
        run("sh", "-c", "echo broken >&2; exit 3")
    assert err.value.code == -32020
    assert err.value.data == {"tool": "sh", "argv": ["sh", "-c", "echo broken >&2; exit 3"], "exit_code": 3,
                              "stderr": "broken\n"}


def test_accepted_exit_codes() -> None:
    assert run("sh", "-c", "exit 2", ok=(0, 2)).returncode == 2


def test_missing_tool_is_not_supported_and_named() -> None:
    with pytest.raises(NotSupported, match="osd-no-such-tool is not installed"):
        run("osd-no-such-tool")


def test_deadline_kills_the_process() -> None:
    started = time.monotonic()
    with pytest.raises(Timeout) as err:
        run("sleep", "30", deadline_s=0.3)
    assert time.monotonic() - started < 5 and err.value.data == {"seconds": 0.3}


def test_start_runs_in_the_background_with_its_output_in_a_log(tmp_path) -> None:  # noqa: ANN001
    log = tmp_path / "out.log"

    async def go() -> tuple[int, int]:
        proc = await tools.start(["sh", "-c", 'echo "$LC_ALL $X"; echo err >&2; sleep 30'], log=log, env={"X": "y"})
        for _ in range(100):
            if "err" in log.read_text():
                break
            await asyncio.sleep(0.02)
        session = os.getsid(proc.pid)
        proc.terminate()
        return await proc.wait(), session == proc.pid

    code, own_session = asyncio.run(go())
    assert code == -15 and own_session
    assert log.read_text() == "C y\nerr\n"
    with pytest.raises(NotSupported):
        asyncio.run(tools.start(["no-such-tool-osd"], log=log))


def test_a_program_that_cannot_be_executed_is_a_kernel_error(tmp_path) -> None:  # noqa: ANN001
    from osd.errors import KernelError

    script = tmp_path / "no-format"  # executable, but neither ELF nor a #! script: ENOEXEC
    script.write_bytes(b"\x00\x01 not a program\n")
    script.chmod(0o755)
    with pytest.raises(KernelError) as err:
        run(str(script))
    assert err.value.data["errno"] == 8 and err.value.data["op"] == f"exec {script}"
