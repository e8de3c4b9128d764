"""The pure dispatcher: JSON-RPC 2.0 rules, ordering, ACL before params, incidents."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import pytest

from osd import methods
from osd.errors import NotFound
from osd.registry import Right
from osd.rpc import Caller, Dispatcher

ADMIN = Caller("uid:0", frozenset({"uid:0"}), Right.ADMIN)
READER = Caller("user:nobody", frozenset({"user:nobody"}), Right.READ)
BADKEY = Caller("user:alice", frozenset(), Right.NONE, auth_error="bad signature")


class Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []

    async def __call__(self, spec, params, caller):  # noqa: ANN001
        self.calls.append((spec.name, params))
        if spec.name == "net.bridge.delete" and params["name"] == "gone":
            raise NotFound("bridge", "gone")
        if spec.name == "net.bridge.delete" and params["name"] == "bug":
            raise KeyError("internal detail")
        return {"echo": spec.name, **params}


def handle(body: Any, caller: Caller = ADMIN, max_batch: int = 100) -> tuple[Any, Recorder]:
    recorder = Recorder()
    dispatcher = Dispatcher(methods.registry(), recorder, max_batch=max_batch)
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    reply = asyncio.run(dispatcher.handle(raw, caller))
    return (None if reply is None else json.loads(reply)), recorder


def req(method: str, params: dict | None = None, id: Any = 1) -> dict:  # noqa: A002
    r: dict[str, Any] = {"jsonrpc": "2.0", "method": method, "id": id}
    if params is not None:
        r["params"] = params
    return r


def test_call_by_name_returns_result_with_same_id() -> None:
    reply, rec = handle(req("net.bridge.add", {"name": "br0"}, id="abc"))
    assert reply == {"jsonrpc": "2.0", "result": {"echo": "net.bridge.add", "name": "br0"}, "id": "abc"}
    assert rec.calls == [("net.bridge.add", {"name": "br0"})]


@pytest.mark.parametrize("request_id", [0, -7, 3.5, "x", None])
def test_ids_of_every_allowed_type_are_echoed(request_id: Any) -> None:
    reply, _ = handle(req("net.interfaces", id=request_id))
    assert reply["id"] == request_id and "result" in reply


def test_notification_runs_and_gets_no_reply() -> None:
    reply, rec = handle({"jsonrpc": "2.0", "method": "net.bridge.add", "params": {"name": "br1"}})
    assert reply is None
    assert rec.calls == [("net.bridge.add", {"name": "br1"})]


def test_parse_error() -> None:
    reply, _ = handle(b'{"jsonrpc": "2.0", "method": "foobar, "params": "bar", "baz]')
    assert reply["error"]["code"] == -32700 and reply["id"] is None


@pytest.mark.parametrize("body", [
    {"jsonrpc": "2.0", "method": 1, "params": "bar"},
    {"jsonrpc": "1.0", "method": "net.interfaces", "id": 1},
    {"method": "net.interfaces", "id": 1},
    {"jsonrpc": "2.0", "method": "net.interfaces", "id": True},
    {"jsonrpc": "2.0", "method": "net.interfaces", "id": {"a": 1}},
    {"jsonrpc": "2.0", "method": "net.interfaces", "params": "bar", "id": 1},
    "just a string",
])
def test_invalid_request_has_null_id(body: Any) -> None:
    reply, rec = handle(body)
    assert reply["error"]["code"] == -32600 and reply["id"] is None
    assert rec.calls == []


def test_positional_params_are_refused_as_invalid_params() -> None:
    reply, rec = handle({"jsonrpc": "2.0", "method": "net.interfaces", "params": ["eth0"], "id": 4})
    assert reply["error"]["code"] == -32602 and reply["id"] == 4 and rec.calls == []


def test_unknown_method() -> None:
    reply, _ = handle(req("net.nothing"))
    assert reply["error"]["code"] == -32601 and reply["error"]["data"] == {"method": "net.nothing"}


def test_empty_batch_is_one_invalid_request() -> None:
    reply, _ = handle([])
    assert reply == {"jsonrpc": "2.0", "error": reply["error"], "id": None}
    assert reply["error"]["code"] == -32600


def test_batch_items_are_independent_and_keep_order() -> None:
    batch = [
        req("net.bridge.add", {"name": "a"}, id="1"),
        {"jsonrpc": "2.0", "method": "net.bridge.add", "params": {"name": "notify"}},
        req("net.bridge.add", {"name": "bad/name"}, id="2"),
        {"foo": "boo"},
        req("net.nothing", id="5"),
        req("net.bridge.delete", {"name": "gone"}, id="9"),
        req("net.bridge.add", {"name": "z"}, id="10"),
    ]
    reply, rec = handle(batch)
    assert [r["id"] for r in reply] == ["1", "2", None, "5", "9", "10"]
    assert [r.get("error", {}).get("code") for r in reply] == [None, -32602, -32600, -32601, -32004, None]
    assert [c[1].get("name") for c in rec.calls] == ["a", "notify", "gone", "z"]


def test_batch_of_notifications_has_no_reply() -> None:
    batch = [{"jsonrpc": "2.0", "method": "net.bridge.add", "params": {"name": n}} for n in ("a", "b")]
    reply, rec = handle(batch)
    assert reply is None and len(rec.calls) == 2


def test_batch_of_invalid_items() -> None:
    reply, _ = handle([1, 2, 3])
    assert [r["error"]["code"] for r in reply] == [-32600] * 3


def test_batch_cap() -> None:
    reply, rec = handle([req("net.interfaces", id=i) for i in range(4)], max_batch=3)
    assert reply["error"]["code"] == -32600 and "cap of 3" in reply["error"]["message"]
    assert rec.calls == []


def test_forbidden_is_checked_before_params() -> None:
    reply, rec = handle(req("net.bridge.add", {"name": "x/y", "bogus": 1}), caller=READER)
    assert reply["error"]["code"] == -32002
    assert reply["error"]["data"] == {"required": "write", "granted": "read", "identity": "user:nobody"}
    assert rec.calls == []


def test_invalid_credential_is_unauthenticated_for_every_method() -> None:
    reply, rec = handle([req("net.interfaces", id=1), req("rpc.discover", id=2)], caller=BADKEY)
    assert [r["error"]["code"] for r in reply] == [-32001, -32001]
    assert reply[0]["error"]["data"] == {"reason": "bad signature"}
    assert rec.calls == []


def test_invalid_params_carry_the_path() -> None:
    reply, rec = handle(req("net.routes.add", {"dst": "198.51.100.0/24", "dev": "eth0", "metric": -1}))
    assert reply["error"]["code"] == -32602
    assert reply["error"]["data"]["path"] == "/metric"
    reply, _ = handle(req("net.routes.add", {"dst": "198.51.100.0/24", "colour": "red"}))
    assert reply["error"]["data"]["path"] == "/colour"
    reply, _ = handle(req("net.lease.restart", {}))
    assert reply["error"]["data"] == {"path": "/interface", "reason": "missing required param 'interface'"}
    assert rec.calls == []


def test_unexpected_exception_is_an_incident_without_its_text(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="osd.call"):
        reply, _ = handle(req("net.bridge.delete", {"name": "bug"}))
    error = reply["error"]
    assert error["code"] == -32603 and "internal detail" not in json.dumps(error)
    incident = error["data"]["incident"]
    logged = [r for r in caplog.records if incident in r.getMessage()]
    assert logged and logged[0].exc_info is not None and "internal detail" in repr(logged[0].exc_info[1])


def test_every_call_is_logged_with_identity_method_duration_outcome(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="osd.call"):
        handle([req("net.interfaces", id=1), req("net.nothing", id=2)], caller=READER)
    lines = [r.getMessage() for r in caplog.records]
    assert any(l.startswith("identity=user:nobody method=net.interfaces ms=") and l.endswith("outcome=ok")
               for l in lines)
    assert any("method=net.nothing" in l and l.endswith("outcome=error code=-32601") for l in lines)


def test_a_raw_json_result_is_sent_verbatim_in_single_and_batch_replies() -> None:
    from osd.rpc import RawJSON

    text = b'[{"name":"lo","mtu":65536,"note":"caf\xc3\xa9"}]'

    async def invoke(spec, params, caller):  # noqa: ANN001
        return RawJSON(text)

    dispatcher = Dispatcher(methods.registry(), invoke)
    single = asyncio.run(dispatcher.handle(json.dumps(req("net.interfaces", id="q")).encode(), ADMIN))
    assert single == b'{"jsonrpc":"2.0","result":' + text + b',"id":"q"}'
    batch = asyncio.run(dispatcher.handle(json.dumps([req("net.interfaces", id=1), req("net.routes", id=None)]).encode(),
                                          ADMIN))
    assert json.loads(batch) == [{"jsonrpc": "2.0", "result": json.loads(text), "id": i} for i in (1, None)]
