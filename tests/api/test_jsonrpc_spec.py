"""Every example of the JSON-RPC 2.0 specification (section 7), adapted to osd's methods, over
the real socket with curl."""

from __future__ import annotations

import json

from support.daemon import Daemon

ADD = '{"jsonrpc": "2.0", "method": "net.bridge.add", "params": {"name": "br0"}, "id": 1}'


def test_call_with_named_params(daemon: Daemon) -> None:
    status, body = daemon.curl(ADD)
    assert status == 200
    reply = json.loads(body)
    assert reply["id"] == 1 and reply["result"]["params"] == {"name": "br0"}


def test_call_with_positional_params_is_invalid_params(daemon: Daemon) -> None:
    status, body = daemon.curl('{"jsonrpc": "2.0", "method": "net.bridge.add", "params": ["br0"], "id": 2}')
    assert status == 200 and json.loads(body)["error"]["code"] == -32602


def test_notification_gets_http_204_and_runs(daemon: Daemon) -> None:
    status, body = daemon.curl('{"jsonrpc": "2.0", "method": "net.bridge.add", "params": {"name": "n1"}}')
    assert (status, body) == (204, "")
    calls = daemon.call("net.status")["calls"]
    assert {"method": "net.bridge.add", "params": {"name": "n1"}, "identity": "user:root"} in calls


def test_non_existent_method(daemon: Daemon) -> None:
    _, body = daemon.curl('{"jsonrpc": "2.0", "method": "foobar", "id": "1"}')
    reply = json.loads(body)
    assert reply["error"]["code"] == -32601 and reply["id"] == "1"


def test_invalid_json(daemon: Daemon) -> None:
    status, body = daemon.curl('{"jsonrpc": "2.0", "method": "foobar, "params": "bar", "baz]')
    reply = json.loads(body)
    assert status == 200 and reply["error"]["code"] == -32700 and reply["id"] is None


def test_invalid_request_object(daemon: Daemon) -> None:
    _, body = daemon.curl('{"jsonrpc": "2.0", "method": 1, "params": "bar"}')
    reply = json.loads(body)
    assert reply["error"]["code"] == -32600 and reply["id"] is None


def test_batch_invalid_json(daemon: Daemon) -> None:
    _, body = daemon.curl('[{"jsonrpc": "2.0", "method": "net.interfaces", "id": "1"},{"jsonrpc": "2.0", "method"]')
    reply = json.loads(body)
    assert isinstance(reply, dict) and reply["error"]["code"] == -32700


def test_empty_array(daemon: Daemon) -> None:
    _, body = daemon.curl("[]")
    reply = json.loads(body)
    assert isinstance(reply, dict) and reply["error"]["code"] == -32600 and reply["id"] is None


def test_invalid_batch_of_one(daemon: Daemon) -> None:
    _, body = daemon.curl("[1]")
    assert [(r["error"]["code"], r["id"]) for r in json.loads(body)] == [(-32600, None)]


def test_invalid_batch(daemon: Daemon) -> None:
    _, body = daemon.curl("[1,2,3]")
    assert [(r["error"]["code"], r["id"]) for r in json.loads(body)] == [(-32600, None)] * 3


def test_mixed_batch(daemon: Daemon) -> None:
    _, body = daemon.curl(json.dumps([
        {"jsonrpc": "2.0", "method": "net.bridge.add", "params": {"name": "b1"}, "id": "1"},
        {"jsonrpc": "2.0", "method": "net.bridge.add", "params": {"name": "b7"}},
        {"jsonrpc": "2.0", "method": "net.bridge.add", "params": {"name": 42}, "id": "2"},
        {"foo": "boo"},
        {"jsonrpc": "2.0", "method": "foo.get", "params": {"name": "myself"}, "id": "5"},
        {"jsonrpc": "2.0", "method": "net.interfaces", "id": "9"},
    ]))
    replies = json.loads(body)
    assert [r["id"] for r in replies] == ["1", "2", None, "5", "9"]
    assert [r.get("error", {}).get("code") for r in replies] == [None, -32602, -32600, -32601, None]


def test_batch_of_notifications(daemon: Daemon) -> None:
    status, body = daemon.curl('[{"jsonrpc": "2.0", "method": "net.bridge.add", "params": {"name": "a"}},'
                               '{"jsonrpc": "2.0", "method": "net.bridge.add", "params": {"name": "b"}}]')
    assert (status, body) == (204, "")
