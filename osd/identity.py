"""Who is calling: peer credentials, ed25519 signed requests and bearer tokens -> Caller.

Strongest first: a signed public key, a bearer token, the socket's peer credentials.
A credential that is presented but invalid makes the caller unauthenticated (-32001 for
every request of that HTTP call); it never falls back to anonymous.
"""

from __future__ import annotations

import collections
import dataclasses
import grp
import os
import pwd
import socket
import struct
import time
from collections.abc import Mapping

import nacl.exceptions
import nacl.signing

from .acl import Acl
from .registry import Right
from .rpc import Caller
from .signing import WINDOW_S as SIGNATURE_WINDOW_S
from .signing import payload as signing_payload

_PEERCRED = struct.Struct("3i")


@dataclasses.dataclass(frozen=True)
class Peer:
    pid: int
    uid: int
    gid: int


def peer_of(sock: socket.socket) -> Peer:
    """SO_PEERCRED of a connected Unix socket."""
    pid, uid, gid = _PEERCRED.unpack(sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _PEERCRED.size))
    return Peer(pid, uid, gid)


class PeerDirectory:
    """uid/gid -> principals (uid:N, user:NAME, unixgroup:G...), cached for a short while."""

    def __init__(self, ttl_s: float = 30.0) -> None:
        self.ttl_s = ttl_s
        self._cache: dict[tuple[int, int], tuple[float, frozenset[str], str]] = {}

    def lookup(self, peer: Peer) -> tuple[frozenset[str], str]:
        """(principals, display identity) of a peer."""
        key = (peer.uid, peer.gid)
        now = time.monotonic()
        hit = self._cache.get(key)
        if hit is not None and hit[0] > now:
            return hit[1], hit[2]
        principals = {f"uid:{peer.uid}"}
        gids = {peer.gid}
        identity = f"uid:{peer.uid}"
        try:
            entry = pwd.getpwuid(peer.uid)
        except KeyError:
            pass
        else:
            principals.add(f"user:{entry.pw_name}")
            identity = f"user:{entry.pw_name}"
            gids.update(os.getgrouplist(entry.pw_name, entry.pw_gid))
        for gid in gids:
            try:
                principals.add(f"unixgroup:{grp.getgrgid(gid).gr_name}")
            except KeyError:
                continue
        frozen = frozenset(principals)
        self._cache[key] = (now + self.ttl_s, frozen, identity)
        return frozen, identity


class ReplayCache:
    """Signatures seen inside the window, bounded in size.

    When full of unexpired entries, the oldest is evicted and the acceptance floor is
    raised to its timestamp: any signature not newer than an evicted one is refused, so
    eviction can never reopen a replay.
    """

    def __init__(self, window_s: int = SIGNATURE_WINDOW_S, capacity: int = 65536) -> None:
        self.window_s = window_s
        self.capacity = capacity
        self._seen: collections.OrderedDict[str, int] = collections.OrderedDict()
        self._floor = 0

    def __len__(self) -> int:
        return len(self._seen)

    def check_and_record(self, signature: str, timestamp: int, now: float) -> str | None:
        """None when fresh (and now recorded); otherwise the reason it is refused."""
        while self._seen:
            oldest_sig, oldest_ts = next(iter(self._seen.items()))
            if oldest_ts >= now - self.window_s:
                break
            del self._seen[oldest_sig]
        if signature in self._seen:
            return "replayed signature"
        if timestamp <= self._floor:
            return "signature may be a replay (replay cache was full); sign a fresh request"
        if len(self._seen) >= self.capacity:
            _, evicted_ts = self._seen.popitem(last=False)
            self._floor = max(self._floor, evicted_ts)
        self._seen[signature] = timestamp
        return None


class Authenticator:
    """Builds the Caller of each HTTP request from its headers and peer credentials."""

    def __init__(self, *, replay: ReplayCache | None = None, peers: PeerDirectory | None = None) -> None:
        self.replay = replay or ReplayCache()
        self.peers = peers or PeerDirectory()
        self._anonymous: dict[tuple[int, int], tuple[Acl, Caller]] = {}

    def caller(self, acl: Acl, peer: Peer, headers: Mapping[str, str], path: str, body: bytes,
               now: float | None = None) -> Caller:
        key = headers.get("X-Public-Key")
        token = headers.get("Authorization")
        if key is None and token is None:
            if headers.get("X-Signature") is not None:
                return self._refuse(peer, "X-Signature without X-Public-Key")
            return self._anonymous_caller(acl, peer)
        if key is not None and token is not None:
            return self._refuse(peer, "present either a signature or a bearer token, not both")
        principals, _ = self.peers.lookup(peer)
        if key is not None:
            now = time.time() if now is None else now
            problem = self._check_signature(key, headers, path, body, now)
            if problem:
                return self._refuse(peer, problem)
            principal = key.lower()
        else:
            scheme, _, value = token.partition(" ")
            name = acl.token_name(value.strip()) if scheme.lower() == "bearer" and value.strip() else None
            if name is None:
                return self._refuse(peer, "unknown bearer token" if scheme.lower() == "bearer"
                                    else "Authorization must be 'Bearer <token>'")
            principal = f"token:{name}"
        everyone = principals | {principal}
        return Caller(principal, everyone, acl.right_of(everyone, anonymous=False))

    def _anonymous_caller(self, acl: Acl, peer: Peer) -> Caller:
        cached = self._anonymous.get((peer.uid, peer.gid))
        if cached is not None and cached[0] is acl:
            return cached[1]
        principals, identity = self.peers.lookup(peer)
        caller = Caller(identity, principals, acl.right_of(principals, anonymous=True))
        self._anonymous[(peer.uid, peer.gid)] = (acl, caller)
        return caller

    def _refuse(self, peer: Peer, reason: str) -> Caller:
        _, identity = self.peers.lookup(peer)
        return Caller(identity, frozenset(), Right.NONE, auth_error=reason)

    def _check_signature(self, key: str, headers: Mapping[str, str], path: str, body: bytes, now: float) -> str | None:
        """None when the request is validly signed, fresh and not replayed; else the reason."""
        stamp = headers.get("X-Timestamp")
        signature = headers.get("X-Signature")
        if stamp is None or signature is None:
            return "X-Public-Key without X-Timestamp and X-Signature (unsigned request)"
        try:
            key_bytes = bytes.fromhex(key)
            sig_bytes = bytes.fromhex(signature)
            timestamp = int(stamp)
        except ValueError:
            return "X-Public-Key, X-Signature must be hex and X-Timestamp an integer"
        if len(key_bytes) != 32 or len(sig_bytes) != 64:
            return "X-Public-Key must be 64 hex characters and X-Signature 128"
        if abs(now - timestamp) > SIGNATURE_WINDOW_S:
            return f"X-Timestamp is more than {SIGNATURE_WINDOW_S} s away from the daemon's clock (expired)"
        try:
            nacl.signing.VerifyKey(key_bytes).verify(signing_payload(path, stamp, body), sig_bytes)
        except (nacl.exceptions.BadSignatureError, nacl.exceptions.ValueError, nacl.exceptions.TypeError):
            return "bad signature"
        return self.replay.check_and_record(signature.lower(), timestamp, now)
