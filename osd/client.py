"""A small synchronous client: JSON-RPC over HTTP/1.1 on a Unix socket, optionally signed.

Used by ``osd call`` and the tests. It imports no aiohttp, so the CLI starts fast.
"""

from __future__ import annotations

import http.client
import json
import os
import socket
from pathlib import Path
from typing import Any

import nacl.signing

from .signing import sign_headers


class ClientError(Exception):
    """The daemon could not be reached or answered something that is not JSON-RPC."""


class RpcError(Exception):
    """A JSON-RPC error reply."""

    def __init__(self, error: dict[str, Any]) -> None:
        self.code = error.get("code")
        self.message = error.get("message", "")
        self.data = error.get("data")
        super().__init__(f"{self.code}: {self.message}")


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self._path)
        except OSError:
            sock.close()
            raise
        self.sock = sock


def load_key(path: str | os.PathLike[str]) -> nacl.signing.SigningKey:
    """An ed25519 signing key from a file holding its 64-hex seed (as ``osd keygen`` writes)."""
    text = Path(path).read_text().strip()
    try:
        return nacl.signing.SigningKey(bytes.fromhex(text))
    except ValueError as exc:
        raise ClientError(f"{path}: not an osd key file (64 hex characters of ed25519 seed)") from exc


def keygen(path: str | os.PathLike[str]) -> str:
    """Write a new key pair: PATH (seed, mode 0600) and PATH.pub; returns the public key hex."""
    key = nacl.signing.SigningKey.generate()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(bytes(key).hex() + "\n")
    public = bytes(key.verify_key).hex()
    Path(f"{path}.pub").write_text(public + "\n")
    return public


class Client:
    """One keep-alive connection to the daemon."""

    def __init__(self, socket_path: str, *, key: nacl.signing.SigningKey | None = None, token: str | None = None,
                 timeout: float = 300.0, path: str = "/") -> None:
        self.socket_path = socket_path
        self.key = key
        self.token = token
        self.path = path
        self._conn = _UnixConnection(socket_path, timeout)
        # Signed requests must differ from each other (an identical one in the window is a
        # replay), so ids start at a random number instead of 1.
        self._next_id = int.from_bytes(os.urandom(4), "big")

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def post(self, body: bytes) -> tuple[int, bytes]:
        """POST raw bytes; (HTTP status, response body)."""
        headers = {"Content-Type": "application/json"}
        if self.key is not None:
            headers.update(sign_headers(self.key, self.path, body))
        if self.token is not None:
            headers["Authorization"] = f"Bearer {self.token}"
        try:
            self._conn.request("POST", self.path, body=body, headers=headers)
            response = self._conn.getresponse()
            return response.status, response.read()
        except OSError as exc:
            self._conn.close()
            raise ClientError(f"cannot talk to osd at {self.socket_path}: {exc.strerror or exc}") from exc
        except http.client.HTTPException as exc:
            self._conn.close()
            raise ClientError(f"bad HTTP exchange with {self.socket_path}: {exc!r}") from exc

    def request(self, payload: Any) -> Any:
        """Send a request object or batch; the decoded reply (None for HTTP 204)."""
        status, body = self.post(json.dumps(payload).encode())
        if status == 204:
            return None
        if status != 200:
            raise ClientError(f"HTTP {status}: {body[:200].decode(errors='replace')}")
        try:
            return json.loads(body)
        except ValueError as exc:
            raise ClientError(f"reply is not JSON: {body[:200]!r}") from exc

    def call(self, method: str, params: dict[str, Any] | None = None) -> Any:
        """The result of one call; raises RpcError on a JSON-RPC error."""
        self._next_id += 1
        request: dict[str, Any] = {"jsonrpc": "2.0", "id": self._next_id, "method": method}
        if params:
            request["params"] = params
        reply = self.request(request)
        if not isinstance(reply, dict):
            raise ClientError(f"unexpected reply: {reply!r}")
        if "error" in reply:
            raise RpcError(reply["error"])
        return reply.get("result")
