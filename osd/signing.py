"""The signed-request scheme shared by the daemon and clients (ed25519 over a canonical payload)."""

from __future__ import annotations

import hashlib
import time

import nacl.signing

WINDOW_S = 60  # a signature's timestamp must be within this many seconds of the daemon's clock


def payload(path: str, timestamp: int | str, body: bytes) -> bytes:
    """The bytes a client signs: POST, path, timestamp and the body's sha256, one per line."""
    return f"POST\n{path}\n{timestamp}\n{hashlib.sha256(body).hexdigest()}".encode()


def sign_headers(key: nacl.signing.SigningKey, path: str, body: bytes, now: float | None = None) -> dict[str, str]:
    """The X-Public-Key, X-Timestamp and X-Signature headers of a request."""
    stamp = str(int(time.time() if now is None else now))
    signature = key.sign(payload(path, stamp, body)).signature
    return {"X-Public-Key": bytes(key.verify_key).hex(), "X-Timestamp": stamp, "X-Signature": signature.hex()}
