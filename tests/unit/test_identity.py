"""Identity: signed requests (valid, forged, expired, replayed, unsigned), tokens, peers."""

from __future__ import annotations

import hashlib
import os

import nacl.signing
import pytest

from osd.acl import Acl
from osd.identity import Authenticator, Peer, PeerDirectory, ReplayCache
from osd.registry import Right
from osd.signing import sign_headers

KEY = nacl.signing.SigningKey(bytes(range(32)))
PUB = bytes(KEY.verify_key).hex()
ROOT = Peer(pid=1, uid=0, gid=0)
NOBODY = Peer(pid=1, uid=65534, gid=65534)
NOW = 1_800_000_000.0
BODY = b'{"jsonrpc":"2.0","id":1,"method":"net.interfaces"}'
ACL = Acl.parse({
    "group": [{"name": "ops", "users": [PUB, "token:ci"]}],
    "ace": [{"right": "write", "groups": ["ops"]}],
    "token": [{"name": "ci", "sha256": hashlib.sha256(b"tok").hexdigest()}],
    "policy": {"anonymous_local": "read"},
})


def caller(headers: dict[str, str], peer: Peer = NOBODY, auth: Authenticator | None = None, now: float = NOW,
           body: bytes = BODY, path: str = "/"):
    return (auth or Authenticator()).caller(ACL, peer, headers, path, body, now=now)


def test_valid_signature_is_the_key_principal() -> None:
    c = caller(sign_headers(KEY, "/", BODY, now=NOW))
    assert c.auth_error is None and c.identity == PUB and c.right is Right.WRITE
    assert "uid:65534" in c.principals  # peer principals still count


@pytest.mark.parametrize("mutate, reason", [
    (lambda h: h.update({"X-Signature": "00" * 64}), "bad signature"),
    (lambda h: h.update({"X-Public-Key": "11" * 32}), "bad signature"),
    (lambda h: h.pop("X-Signature"), "unsigned request"),
    (lambda h: h.pop("X-Timestamp"), "unsigned request"),
    (lambda h: h.update({"X-Timestamp": "soon"}), "X-Timestamp an integer"),
    (lambda h: h.update({"X-Public-Key": "abc"}), "must be hex"),
    (lambda h: h.update({"X-Public-Key": "ab" * 16}), "64 hex characters"),
])
def test_bad_signatures_are_unauthenticated(mutate, reason: str) -> None:  # noqa: ANN001
    headers = sign_headers(KEY, "/", BODY, now=NOW)
    mutate(headers)
    c = caller(headers)
    assert c.right is Right.NONE and reason in c.auth_error


def test_signature_binds_body_and_path() -> None:
    headers = sign_headers(KEY, "/", BODY, now=NOW)
    assert caller(headers, body=BODY + b" ").auth_error == "bad signature"
    assert caller(headers, path="/rpc").auth_error == "bad signature"


@pytest.mark.parametrize("skew", [-61, 61, -3600])
def test_expired_signature(skew: int) -> None:
    c = caller(sign_headers(KEY, "/", BODY, now=NOW + skew))
    assert "expired" in c.auth_error


def test_replayed_signature_is_refused_within_the_window() -> None:
    auth = Authenticator()
    headers = sign_headers(KEY, "/", BODY, now=NOW)
    assert caller(headers, auth=auth).auth_error is None
    assert caller(headers, auth=auth, now=NOW + 30).auth_error == "replayed signature"


def test_signature_alone_without_key_is_refused() -> None:
    headers = sign_headers(KEY, "/", BODY, now=NOW)
    headers.pop("X-Public-Key")
    assert "without X-Public-Key" in caller(headers).auth_error


def test_replay_cache_is_bounded_and_never_reopens_a_replay() -> None:
    cache = ReplayCache(window_s=60, capacity=3)
    for i in range(3):
        assert cache.check_and_record(f"s{i}", int(NOW) + i, NOW) is None
    assert cache.check_and_record("s3", int(NOW) + 3, NOW) is None  # evicts s0 (ts NOW)
    assert len(cache) == 3
    assert "replay cache was full" in cache.check_and_record("s0", int(NOW), NOW)
    assert cache.check_and_record("s9", int(NOW) - 5, NOW) is not None
    # entries older than the window expire and free space
    assert cache.check_and_record("s10", int(NOW) + 200, NOW + 200) is None
    assert len(cache) == 1


def test_bearer_tokens() -> None:
    c = caller({"Authorization": "Bearer tok"})
    assert c.identity == "token:ci" and c.right is Right.WRITE
    assert caller({"Authorization": "Bearer nope"}).auth_error == "unknown bearer token"
    assert "Bearer <token>" in caller({"Authorization": "Basic dG9r"}).auth_error


def test_key_and_token_together_are_refused() -> None:
    headers = {**sign_headers(KEY, "/", BODY, now=NOW), "Authorization": "Bearer tok"}
    assert "not both" in caller(headers).auth_error


def test_anonymous_gets_policy_and_peer_groups() -> None:
    c = caller({}, peer=ROOT)
    assert c.identity == "user:root" and "unixgroup:root" in c.principals and c.right is Right.READ
    assert caller({}, peer=NOBODY).right is Right.READ


def test_peer_directory_names_user_and_groups() -> None:
    principals, identity = PeerDirectory().lookup(Peer(os.getpid(), 65534, 65534))
    assert identity == "user:nobody"
    assert {"uid:65534", "user:nobody", "unixgroup:nogroup"} <= principals
    principals, identity = PeerDirectory().lookup(Peer(1, 4242424, 4242424))
    assert identity == "uid:4242424" and principals == {"uid:4242424"}
