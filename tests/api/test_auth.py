"""Identity and ACL over the real socket: peer credentials, signed keys, tokens, SIGHUP reload."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import nacl.signing
import pytest

from osd.client import Client, RpcError
from osd.signing import sign_headers
from support.daemon import Daemon

KEY = nacl.signing.SigningKey.generate()
PUB = bytes(KEY.verify_key).hex()
TOKEN = "tok-" + os.urandom(8).hex()
BODY = b'{"jsonrpc":"2.0","id":1,"method":"net.bridge.add","params":{"name":"br9"}}'


def acl_text(writer_key: str = PUB) -> str:
    return f"""
[[group]]
name = "writers"
users = ["{writer_key}", "token:ci"]
[[ace]]
right = "write"
groups = ["writers"]
[[token]]
name = "ci"
sha256 = "{hashlib.sha256(TOKEN.encode()).hexdigest()}"
[policy]
anonymous_local = "read"
"""


@pytest.fixture
def acl_daemon(tmp_path: Path):  # noqa: ANN201
    acl = tmp_path / "acl.toml"
    acl.write_text(acl_text())
    acl.chmod(0o600)
    with Daemon(args=["--acl", str(acl)]) as d:
        d.acl_path = acl
        yield d


def post(d: Daemon, headers: dict[str, str], body: bytes = BODY) -> dict:
    with Client(d.socket) as c:
        c._conn.request("POST", "/", body=body, headers={"Content-Type": "application/json", **headers})
        return json.loads(c._conn.getresponse().read())


def test_valid_signature_grants_the_keys_right(acl_daemon: Daemon) -> None:
    assert acl_daemon.call("net.bridge.add", {"name": "br9"}, key=KEY)["identity"] == PUB


def test_forged_expired_replayed_and_unsigned_keys_are_unauthenticated(acl_daemon: Daemon) -> None:
    other = nacl.signing.SigningKey.generate()
    forged = sign_headers(other, "/", BODY)
    forged["X-Public-Key"] = PUB
    expired = sign_headers(KEY, "/", BODY, now=time.time() - 120)
    fresh = sign_headers(KEY, "/", BODY)
    assert "result" in post(acl_daemon, fresh)
    for headers, reason in [(forged, "bad signature"), (expired, "expired"), (fresh, "replayed"),
                            ({"X-Public-Key": PUB}, "unsigned")]:
        error = post(acl_daemon, headers)["error"]
        assert error["code"] == -32001 and reason in error["data"]["reason"], (reason, error)


def test_tokens(acl_daemon: Daemon) -> None:
    assert acl_daemon.call("net.bridge.add", {"name": "b"}, token=TOKEN)["identity"] == "token:ci"
    with pytest.raises(RpcError) as err:
        acl_daemon.call("net.interfaces", token="not-the-token")
    assert err.value.code == -32001 and err.value.data == {"reason": "unknown bearer token"}


def test_sighup_reloads_and_keeps_the_old_acl_when_the_new_one_is_bad(acl_daemon: Daemon) -> None:
    acl_daemon.acl_path.write_text(acl_text() + "\n[[group]]\nname = 'loop'\nmember_groups = ['loop']\n")
    acl_daemon.signal(signal.SIGHUP)
    deadline = time.monotonic() + 5
    while "previous ACL stays in force" not in acl_daemon.log and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "cycle in member_groups: loop -> loop" in acl_daemon.log
    assert acl_daemon.call("net.bridge.add", {"name": "b"}, key=KEY)["identity"] == PUB  # old ACL in force

    acl_daemon.acl_path.write_text(acl_text(writer_key="cd" * 32))  # a good file without our key
    acl_daemon.signal(signal.SIGHUP)
    deadline = time.monotonic() + 5
    while "ACL reloaded" not in acl_daemon.log and time.monotonic() < deadline:
        time.sleep(0.05)
    with pytest.raises(RpcError) as err:
        acl_daemon.call("net.bridge.add", {"name": "b"}, key=KEY)
    assert err.value.code == -32002 and err.value.data["identity"] == PUB


def test_bad_acl_file_is_a_startup_error(tmp_path: Path) -> None:
    acl = tmp_path / "acl.toml"
    acl.write_text("[[ace]]\nright = 'write'\ngroups = ['nobody-defined-this']\n")
    acl.chmod(0o600)
    d = Daemon(args=["--acl", str(acl)])
    try:
        with pytest.raises(Exception, match="undefined group 'nobody-defined-this'"):
            d.start(timeout=10)
        assert d.proc.returncode == 1
    finally:
        d.cleanup()


@pytest.mark.root
def test_nobody_reads_but_cannot_write(tmp_path: Path) -> None:
    config = tmp_path / "osd.toml"
    config.write_text('[server]\ngroup = "nogroup"\n')
    with Daemon(args=["--config", str(config)]) as d:
        os.chmod(d.workdir, 0o755)
        as_nobody = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups",
                     sys.executable, "-B", "-m", "osd", "call", "--socket", d.socket]
        env = {"PATH": os.environ["PATH"], "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
        read = subprocess.run([*as_nobody, "net.interfaces"], capture_output=True, text=True, env=env)
        assert read.returncode == 0, read.stderr
        assert json.loads(read.stdout)["identity"] == "user:nobody"
        write = subprocess.run([*as_nobody, "net.bridge.add", "name=br0"], capture_output=True, text=True, env=env)
        assert write.returncode == 1
        assert "error -32002" in write.stderr and '"identity": "user:nobody"' in write.stderr
        assert '"required": "write", "granted": "read"' in write.stderr
