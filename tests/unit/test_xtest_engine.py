"""The scenario engine on an in-process caller: the profile applied to each call, outcomes, undo."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from osd import methods
from osd.client import RpcError
from osd.xtest.engine import (
    Ledger, Outcome, Scenario, Trial, Unreachable, plan, run_scenario, verdict,
)
from osd.xtest.profile import Profile, load
from support.profiles import only, write

REGISTRY = methods.registry()
UNSUPPORTED = {"code": -32010, "message": "not supported", "data": {"reason": "kernel lacks 802.1q VLAN support"}}


class FakeLab:
    disks = ["/dev/loop7"]


class Daemon:
    """Answers by method name: a value, an error object, an exception, or a coroutine (to sleep)."""

    def __init__(self, answers: dict[str, Any]) -> None:
        self.answers = answers
        self.calls: list[tuple[str, dict[str, Any]]] = []

    async def __call__(self, method: str, params: dict[str, Any]) -> Any:
        self.calls.append((method, params))
        answer = self.answers.get(method, {"changed": True})
        if callable(answer):
            answer = await answer(params)
        if isinstance(answer, dict) and "code" in answer:
            raise RpcError(answer)
        if isinstance(answer, Exception):
            raise answer
        return answer


def profile(tmp_path: Path, must: list[str], expect: dict[str, str] | None = None, **changes: Any) -> Profile:
    return load(write(tmp_path, only(must, expect, **changes)), cases={"net.bridge.add:vlan_filtering"})


def run(prof: Profile, daemon: Daemon, body: Any, methods_: tuple[str, ...] = (), timeout: float = 5.0
        ) -> tuple[str, dict[str, Ledger], list[str]]:
    ledgers: dict[str, Ledger] = {}
    leftovers: list[str] = []
    trial = Trial(scenario=Scenario("test", methods_, body), profile=prof, registry=REGISTRY, caller=daemon,
                  ledgers=ledgers, lab=FakeLab(), tag="beef", timeout=timeout, leftovers=leftovers)
    status = asyncio.run(run_scenario(trial))
    return status, ledgers, leftovers


def outcome(prof: Profile, ledgers: dict[str, Ledger], method: str) -> tuple[Outcome, str]:
    judged = verdict(prof, REGISTRY, method, ledgers.get(method, Ledger()))
    return judged.outcome, judged.detail


def test_plan_follows_the_profile(tmp_path: Path) -> None:
    prof = profile(tmp_path, ["net.bridge.add", "net.bridge"], {"net.vlan": "802.1q"},
                   allow_tiers=["read", "scratch"])
    assert plan(prof, REGISTRY, "net.bridge").kind == "run"
    assert plan(prof, REGISTRY, "net.vlan").kind == "expect"
    assert plan(prof, REGISTRY, "net.routes").kind == "skip"
    with pytest.raises(Exception, match="tier 'scratch' is not in allow_tiers"):
        profile(tmp_path, ["net.bridge.add"], allow_tiers=["read"])
    prof = profile(tmp_path, ["net.bridge"], {"net.bridge.add": "VLAN support"}, allow_tiers=["read"])
    assert plan(prof, REGISTRY, "net.bridge.add").kind == "not-run"
    assert verdict(prof, REGISTRY, "net.bridge.add", Ledger()).outcome is Outcome.NOT_RUN
    prof = profile(tmp_path, ["net.bridge.add"], {"net.bridge.add:vlan_filtering": "VLAN"})
    assert plan(prof, REGISTRY, "net.bridge.add", "vlan_filtering").kind == "expect"
    assert plan(prof, REGISTRY, "net.bridge.add").kind == "run"


def test_a_passing_write_and_its_read(tmp_path: Path) -> None:
    prof = profile(tmp_path, ["net.bridge.add", "net.bridge"])
    daemon = Daemon({"net.bridge.add": {"changed": True, "name": "xtbeefba"},
                     "net.bridge": [{"name": "xtbeefba", "ports": []}]})

    async def body(t: Trial) -> None:
        name = t.name("ba")
        assert name == "xtbeefba"
        t.expect_changed("net.bridge.add", await t.call("net.bridge.add", {"name": name}), True, "creating")
        t.expect("net.bridge.add", (await t.call("net.bridge", {"name": name}))[0]["name"] == name, "listed")

    status, ledgers, _ = run(prof, daemon, body, ("net.bridge.add", "net.bridge"))
    assert status == "completed"
    assert outcome(prof, ledgers, "net.bridge.add") == (Outcome.PASSED, "")
    assert ledgers["net.bridge.add"].calls == 1 and ledgers["net.bridge.add"].seconds >= 0
    assert outcome(prof, ledgers, "net.routes")[0] is Outcome.SKIPPED


def test_a_failed_check_and_a_result_that_breaks_the_schema(tmp_path: Path) -> None:
    prof = profile(tmp_path, ["net.bridge.add", "net.bridge"])
    daemon = Daemon({"net.bridge.add": {"name": "x"}, "net.bridge": {"not": "a list"}})

    async def body(t: Trial) -> None:
        await t.call("net.bridge.add", {"name": "x"})
        await t.call("net.bridge")
        t.expect("net.bridge", False, "it lists x")

    status, ledgers, _ = run(prof, daemon, body)
    assert status == "completed"  # neither stops the scenario
    assert "schema at /: 'changed' is a required property" in outcome(prof, ledgers, "net.bridge.add")[1]
    result = outcome(prof, ledgers, "net.bridge")
    assert result[0] is Outcome.FAILED and "is not of type 'array'" in result[1] and "(and 1 more)" in result[1]


def test_an_error_stops_the_scenario_and_the_rest_is_not_reached(tmp_path: Path) -> None:
    prof = profile(tmp_path, ["net.bridge.add", "net.bridge.delete", "net.bridge"])
    daemon = Daemon({"net.bridge.add": {"code": -32021, "message": "add bridge: Operation not permitted",
                                        "data": {"errno": 1}}})

    async def body(t: Trial) -> None:
        await t.call("net.bridge.add", {"name": "x"}, undo=("net.bridge.delete", {"name": "x"}))
        await t.call("net.bridge.delete", {"name": "x"})

    status, ledgers, leftovers = run(prof, daemon, body, ("net.bridge.add", "net.bridge.delete"))
    assert status.startswith("stopped: net.bridge.add failed: error -32021")
    assert outcome(prof, ledgers, "net.bridge.add")[0] is Outcome.FAILED
    assert outcome(prof, ledgers, "net.bridge.delete") == (
        Outcome.FAILED, "not reached: net.bridge.add failed: error -32021: add bridge: Operation not permitted")
    assert daemon.calls == [("net.bridge.add", {"name": "x"})]  # no undo for what was never made
    assert leftovers == []
    assert outcome(prof, ledgers, "net.bridge") == (Outcome.FAILED, "no scenario called it")


def test_undo_runs_newest_first_unless_the_scenario_did_it(tmp_path: Path) -> None:
    prof = profile(tmp_path, ["net.bridge.add", "net.bridge.delete", "net.bridge"])
    daemon = Daemon({"net.bridge": {"code": -32603, "message": "internal error"}})

    async def body(t: Trial) -> None:
        for name in ("a", "b", "c"):
            await t.call("net.bridge.add", {"name": name}, undo=("net.bridge.delete", {"name": name}))
        await t.call("net.bridge.delete", {"name": "b"})
        await t.call("net.bridge")  # fails: the scenario stops here

    status, ledgers, leftovers = run(prof, daemon, body)
    assert status.startswith("stopped: net.bridge failed")
    deletes = [p["name"] for m, p in daemon.calls if m == "net.bridge.delete"]
    assert deletes == ["b", "c", "a"]
    assert outcome(prof, ledgers, "net.bridge.delete")[0] is Outcome.PASSED  # undo calls are not judged


def test_an_undo_that_fails_is_a_leftover(tmp_path: Path) -> None:
    prof = profile(tmp_path, ["net.bridge.add", "net.bridge.delete"])
    daemon = Daemon({"net.bridge.delete": {"code": -32005, "message": "bridge 'a': busy"}})

    async def body(t: Trial) -> None:
        await t.call("net.bridge.add", {"name": "a"}, undo=("net.bridge.delete", {"name": "a"}))

    _, _, leftovers = run(prof, daemon, body)
    assert leftovers == ["test: undo net.bridge.delete {'name': 'a'} failed: error -32005: bridge 'a': busy"]


@pytest.mark.parametrize("answer, expected", [
    (UNSUPPORTED, (Outcome.UNSUPPORTED, "-32010: kernel lacks 802.1q VLAN support")),
    ({"code": -32010, "message": "not supported", "data": {"reason": "net.vlan is not implemented yet"}},
     (Outcome.FAILED, "expected -32010 mentioning '802.1q', got error -32010: not supported "
                      "(net.vlan is not implemented yet)")),
    ({"code": -32603, "message": "internal error"},
     (Outcome.FAILED, "expected -32010 mentioning '802.1q', got error -32603: internal error")),
    ({"links": [], "bridges": []}, (Outcome.FAILED, "expected -32010 mentioning '802.1q', but it succeeded")),
])
def test_expected_unsupported(tmp_path: Path, answer: Any, expected: tuple[Outcome, str]) -> None:
    prof = profile(tmp_path, ["net.interfaces"], {"net.vlan": "802.1Q"})
    daemon = Daemon({"net.vlan": answer, "net.interfaces": []})

    async def body(t: Trial) -> None:
        await t.call("net.vlan", optional=True)
        await t.call("net.interfaces")

    status, ledgers, _ = run(prof, daemon, body)
    assert outcome(prof, ledgers, "net.vlan") == (expected[0], expected[1].replace("'802.1q'", "'802.1Q'"))
    assert (status == "completed") == (expected[0] is Outcome.UNSUPPORTED or "succeeded" in expected[1])


def test_an_unexpected_success_is_undone(tmp_path: Path) -> None:
    prof = profile(tmp_path, ["net.bridge.delete"], {"net.bridge.add": "VLAN filtering"})
    daemon = Daemon({"net.bridge.add": {"changed": True, "name": "v"}})

    async def body(t: Trial) -> None:
        made = await t.call("net.bridge.add", {"name": "v"}, optional=True, undo=("net.bridge.delete", {"name": "v"}))
        assert made == {"changed": True, "name": "v"}

    status, ledgers, _ = run(prof, daemon, body)
    assert status == "completed"  # an assertion failing in the body would show here
    assert outcome(prof, ledgers, "net.bridge.add")[0] is Outcome.FAILED
    assert daemon.calls[-1] == ("net.bridge.delete", {"name": "v"})


def test_cases(tmp_path: Path) -> None:
    prof = profile(tmp_path, ["net.bridge.add"], {"net.bridge.add:vlan_filtering": "VLAN"})
    daemon = Daemon({"net.bridge.add": lambda p: _answer(UNSUPPORTED if p.get("vlan_filtering") else
                                                         {"changed": True})})

    async def body(t: Trial) -> None:
        await t.call("net.bridge.add", {"name": "a"})
        assert await t.call("net.bridge.add", {"name": "v", "vlan_filtering": True}, case="vlan_filtering",
                            optional=True) is None

    status, ledgers, _ = run(prof, daemon, body)
    assert status == "completed"
    assert outcome(prof, ledgers, "net.bridge.add") == (Outcome.PASSED, "")
    assert ledgers["net.bridge.add"].cases == {
        "vlan_filtering": {"outcome": "unsupported", "detail": "-32010: kernel lacks 802.1q VLAN support"}}
    # without the case in the profile the same answer is a failure
    prof = profile(tmp_path, ["net.bridge.add"])
    _, ledgers, _ = run(prof, daemon, body)
    assert outcome(prof, ledgers, "net.bridge.add")[1].startswith("[vlan_filtering] error -32010")


async def _answer(value: Any) -> Any:
    return value


def test_skipped_methods_are_not_called(tmp_path: Path) -> None:
    prof = profile(tmp_path, ["net.interfaces"])
    daemon = Daemon({})

    async def body(t: Trial) -> None:
        assert await t.call("net.routes", optional=True) is None
        await t.call("net.routes")  # needed: stops the scenario

    status, _, _ = run(prof, daemon, body)
    assert status == "stopped: net.routes is not run here (not part of this test)" and daemon.calls == []


def test_expected_errors(tmp_path: Path) -> None:
    prof = profile(tmp_path, ["net.bridge", "net.interfaces"])
    daemon = Daemon({"net.bridge": {"code": -32004, "message": "bridge 'x' not found"}, "net.interfaces": []})

    async def body(t: Trial) -> None:
        error = await t.call("net.bridge", {"name": "x"}, expect_error=(-32004,))
        assert error["code"] == -32004
        await t.call("net.interfaces", {"name": "x"}, expect_error=-32004)

    status, ledgers, _ = run(prof, daemon, body)
    assert outcome(prof, ledgers, "net.bridge") == (Outcome.PASSED, "")
    assert outcome(prof, ledgers, "net.interfaces") == (Outcome.FAILED, "expected error -32004, got the result []")
    assert status.startswith("stopped")


def test_a_call_past_its_deadline_fails(tmp_path: Path) -> None:
    prof = profile(tmp_path, ["net.interfaces"])

    async def slow(params: dict[str, Any]) -> Any:
        await asyncio.sleep(5)

    async def body(t: Trial) -> None:
        await t.call("net.interfaces", timeout=0.05)

    _, ledgers, _ = run(prof, Daemon({"net.interfaces": slow}), body)
    assert outcome(prof, ledgers, "net.interfaces") == (Outcome.FAILED, "no answer within 0.05 s")


def test_a_daemon_that_goes_away_and_a_scenario_bug(tmp_path: Path) -> None:
    prof = profile(tmp_path, ["net.interfaces", "net.routes"])

    async def body(t: Trial) -> None:
        await t.call("net.interfaces")

    status, ledgers, _ = run(prof, Daemon({"net.interfaces": Unreachable("connection reset")}), body,
                             ("net.interfaces", "net.routes"))
    assert status == "daemon unreachable: connection reset"
    assert outcome(prof, ledgers, "net.interfaces")[1] == "the daemon went away during the call: connection reset"
    assert outcome(prof, ledgers, "net.routes")[1] == "not reached: connection reset"

    async def buggy(t: Trial) -> None:
        await t.call("net.interfaces")
        raise KeyError("addresses")

    status, ledgers, _ = run(prof, Daemon({"net.interfaces": []}), buggy, ("net.interfaces",))
    assert status == "scenario error: KeyError: 'addresses'"
    assert outcome(prof, ledgers, "net.interfaces")[0] is Outcome.FAILED


def test_scratch_names_and_disks(tmp_path: Path) -> None:
    prof = profile(tmp_path, ["net.interfaces"])

    async def body(t: Trial) -> None:
        assert t.disk(0) == "/dev/loop7"
        with pytest.raises(ValueError, match="longer than 15"):
            t.name("waytoolong")
        t.disk(1)

    status, _, _ = run(prof, Daemon({}), body)
    assert status.startswith("stopped: needs 2 scratch disks, the lab has 1")


def test_connection_takes_an_error_with_id_null_as_an_error_not_an_unreachable_daemon(tmp_path: Path) -> None:
    from osd.client import RpcError
    from osd.xtest.connection import Connection
    from support.scripted import ScriptedServer, reply

    answers = {1: {"jsonrpc": "2.0", "error": {"code": -32600, "message": "invalid request"}, "id": None},
               2: {"jsonrpc": "2.0", "result": 1, "id": 99},  # a result for another request
               3: {"result": 1, "id": 3}}  # not JSON-RPC 2.0

    async def scenario() -> list[str]:
        seen = []
        path = str(tmp_path / "s.sock")
        async with ScriptedServer(path, lambda conn, n, body: reply(answers[json.loads(body)["id"]])):
            async with Connection(path) as conn:
                for _ in answers:
                    try:
                        await conn.call("rpc.health", {})
                    except (RpcError, Unreachable) as exc:
                        seen.append(type(exc).__name__)
        return seen

    assert asyncio.run(scenario()) == ["RpcError", "Unreachable", "Unreachable"]
