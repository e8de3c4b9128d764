"""The osd command line against a live daemon: call forms, signing, tokens, exit codes, keygen, methods."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from support.daemon import Daemon

OSD = [sys.executable, "-m", "osd"]


def osd(*args: str, stdin: str | None = None, env: dict | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*OSD, *args], input=stdin, capture_output=True, text=True, timeout=60,
                          env={**os.environ, **(env or {})})


def test_call_with_key_value_and_json_params(daemon: Daemon) -> None:
    out = osd("call", "--socket", daemon.socket, "net.routes.add", "dst=198.51.100.0/24", "dev=123", "metric=7")
    assert out.returncode == 0, out.stderr
    # dev is a string in the schema, so "123" stays a string; metric is an integer
    assert json.loads(out.stdout)["params"] == {"dst": "198.51.100.0/24", "dev": "123", "metric": 7}
    out = osd("call", "--socket", daemon.socket, "net.bridge.add", '{"name": "br5", "stp": true}')
    assert json.loads(out.stdout)["params"] == {"name": "br5", "stp": True}
    out = osd("call", "--socket", daemon.socket, "net.bridge.add", "name=br6", "stp:=false")
    assert json.loads(out.stdout)["params"] == {"name": "br6", "stp": False}


def test_call_reads_a_request_or_batch_from_stdin(daemon: Daemon) -> None:
    out = osd("call", "--socket", daemon.socket, stdin='{"jsonrpc":"2.0","id":7,"method":"rpc.health"}')
    assert out.returncode == 0 and json.loads(out.stdout)["id"] == 7
    batch = '[{"jsonrpc":"2.0","id":1,"method":"rpc.health"},{"jsonrpc":"2.0","id":2,"method":"net.nope"}]'
    out = osd("call", "--socket", daemon.socket, stdin=batch)
    assert out.returncode == 1 and len(json.loads(out.stdout)) == 2 and "error -32601" in out.stderr


def test_errors_go_to_stderr_with_nonzero_exit(daemon: Daemon) -> None:
    out = osd("call", "--socket", daemon.socket, "net.bridge.add", "name=missing")
    assert out.returncode == 1 and out.stdout == ""
    assert out.stderr.startswith("osd: error -32004: bridge 'missing' not found")
    out = osd("call", "--socket", daemon.socket, "net.bridge.add", "{broken")
    assert out.returncode == 2 and "bad params" in out.stderr


def test_unreachable_daemon_exits_3(tmp_path: Path) -> None:
    out = osd("call", "--socket", str(tmp_path / "none.sock"), "rpc.health")
    assert out.returncode == 3 and "cannot talk to osd" in out.stderr


def test_keygen_and_signed_call(tmp_path: Path) -> None:
    key = tmp_path / "id"
    out = osd("keygen", str(key))
    public = out.stdout.strip()
    assert out.returncode == 0 and len(public) == 64
    assert stat.S_IMODE(key.stat().st_mode) == 0o600 and (tmp_path / "id.pub").read_text().strip() == public
    assert osd("keygen", str(key)).returncode == 2  # never overwrites a key
    acl = tmp_path / "acl.toml"
    acl.write_text(f'[[group]]\nname = "w"\nusers = ["{public}"]\n[[ace]]\nright = "write"\ngroups = ["w"]\n')
    acl.chmod(0o600)
    with Daemon(args=["--acl", str(acl)]) as d:
        out = osd("call", "--socket", d.socket, "--key", str(key), "net.bridge.add", "name=br1")
        assert out.returncode == 0 and json.loads(out.stdout)["identity"] == public


def test_token_from_flag_or_environment(tmp_path: Path) -> None:
    import hashlib

    acl = tmp_path / "acl.toml"
    acl.write_text(f'[[token]]\nname = "ci"\nsha256 = "{hashlib.sha256(b"abc").hexdigest()}"\n'
                   '[[group]]\nname = "r"\nusers = ["token:ci"]\n[[ace]]\nright = "read"\ngroups = ["r"]\n')
    acl.chmod(0o600)
    with Daemon(args=["--acl", str(acl)]) as d:
        assert json.loads(osd("call", "--socket", d.socket, "--token", "abc", "net.interfaces").stdout)[
            "identity"] == "token:ci"
        out = osd("call", "--socket", d.socket, "net.interfaces", env={"OSD_TOKEN": "abd"})
        assert out.returncode == 1 and "-32001" in out.stderr


def test_methods_lists_the_catalogue() -> None:
    lines = osd("methods").stdout.splitlines()
    assert len(lines) == 74
    assert any(line.split()[:3] == ["net.conntrack.flush", "admin", "disruptive"] for line in lines)


@pytest.mark.parametrize("argv", [["call", "--socket", "/x", "net.interfaces", "name"], ["serve", "--rename", "net"]])
def test_usage_errors_exit_2(argv: list[str]) -> None:
    assert osd(*argv).returncode == 2
