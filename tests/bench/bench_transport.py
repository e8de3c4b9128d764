"""Transport benchmark: rpc.health through osd vs a bare aiohttp JSON handler, same client, same run.

    python tests/bench/bench_transport.py [--requests N] [--seconds S] [--clients C] [--rounds R]

osd runs as `osd serve` (native backend, an ACL file loaded, one log line per call to a
file); the reference ("bare") is a bare aiohttp app on another Unix socket that parses the
JSON body and answers a JSON-RPC reply; "bare-ll" is the same handler on aiohttp's
low-level server, as osd uses, shown as a second, stricter reference. Both run as separate processes; the client is a minimal
keep-alive HTTP/1.1 client in this process, the same for both. Sequential latency (p50,
p99) and throughput with C concurrent keep-alive clients are measured in alternating
rounds; the medians of the rounds are printed with the ratio osd/bare. This prints
figures; it never passes or fails on them.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
REQUEST = b'{"jsonrpc":"2.0","id":1,"method":"rpc.health"}'

BARE_SERVER = r"""
import json, sys
from aiohttp import web

async def handle(request):
    body = json.loads(await request.read())
    return web.json_response({"jsonrpc": "2.0", "result": {"status": "ok"}, "id": body.get("id")})

app = web.Application()
app.router.add_post("/", handle)
web.run_app(app, path=sys.argv[1], access_log=None, print=None)
"""

# The same handler on aiohttp's low-level server (no Application, router or middleware),
# which is what osd itself runs on: the floor for any handler on this machine.
BARE_LOWLEVEL_SERVER = r"""
import asyncio, json, sys
from aiohttp import web

async def handle(request):
    body = json.loads(await request.read())
    return web.json_response({"jsonrpc": "2.0", "result": {"status": "ok"}, "id": body.get("id")})

async def main():
    runner = web.ServerRunner(web.Server(handle, access_log=None))
    await runner.setup()
    await web.UnixSite(runner, sys.argv[1]).start()
    await asyncio.Event().wait()

asyncio.run(main())
"""


def http_request(body: bytes) -> bytes:
    return (b"POST / HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
            b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)


class Connection:
    """A minimal keep-alive HTTP/1.1 client: enough for Content-Length replies."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, path: str) -> "Connection":
        return cls(*await asyncio.open_unix_connection(path))

    async def roundtrip(self, raw: bytes) -> bytes:
        self.writer.write(raw)
        head = await self.reader.readuntil(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.1 200"):
            raise RuntimeError(f"unexpected reply: {head[:60]!r}")
        start = head.lower().index(b"content-length:") + 15
        length = int(head[start:head.index(b"\r\n", start)])
        return await self.reader.readexactly(length)

    def close(self) -> None:
        self.writer.close()


async def sequential(path: str, n: int, request: bytes = REQUEST) -> list[float]:
    conn = await Connection.open(path)
    raw = http_request(request)
    for _ in range(50):
        await conn.roundtrip(raw)
    samples = []
    for _ in range(n):
        t0 = time.perf_counter()
        await conn.roundtrip(raw)
        samples.append(time.perf_counter() - t0)
    conn.close()
    return samples


async def concurrent(path: str, clients: int, seconds: float, request: bytes = REQUEST) -> float:
    raw = http_request(request)
    conns = [await Connection.open(path) for _ in range(clients)]
    done = 0
    stop_at = time.perf_counter() + seconds

    async def worker(conn: Connection) -> None:
        nonlocal done
        while time.perf_counter() < stop_at:
            await conn.roundtrip(raw)
            done += 1

    started = time.perf_counter()
    await asyncio.gather(*(worker(c) for c in conns))
    elapsed = time.perf_counter() - started
    for c in conns:
        c.close()
    return done / elapsed


def wait_for_socket(path: str, proc: subprocess.Popen[bytes], timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited with {proc.returncode}")
        try:
            with socket.socket(socket.AF_UNIX) as s:
                s.connect(path)
                return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"no server on {path}")


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=3000, help="sequential requests per round")
    parser.add_argument("--seconds", type=float, default=3.0, help="duration of each concurrent round")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="osd-bench-", dir="/tmp"))
    acl = work / "acl.toml"
    acl.write_text('[[group]]\nname = "admins"\nusers = ["uid:0"]\n[[ace]]\nright = "admin"\ngroups = ["admins"]\n'
                   '[policy]\nanonymous_local = "read"\n')
    acl.chmod(0o600)
    sockets = {"osd": str(work / "osd.sock"), "bare": str(work / "bare.sock"), "bare-ll": str(work / "bare-ll.sock")}
    log = open(work / "osd.log", "wb")
    # As root, both servers get an empty network namespace of their own: the native backend
    # would otherwise set up its nftables table on the host. The Unix sockets work across it.
    isolate = ["unshare", "--net"] if os.geteuid() == 0 else []
    procs = {
        "osd": subprocess.Popen([*isolate, sys.executable, "-m", "osd", "serve", "--socket", sockets["osd"],
                                 "--state-dir", str(work / "state"), "--acl", str(acl)],
                                stdout=log, stderr=log, cwd=REPO),
        "bare": subprocess.Popen([*isolate, sys.executable, "-c", BARE_SERVER, sockets["bare"]]),
        "bare-ll": subprocess.Popen([*isolate, sys.executable, "-c", BARE_LOWLEVEL_SERVER, sockets["bare-ll"]]),
    }
    try:
        for name, proc in procs.items():
            wait_for_socket(sockets[name], proc)
        results: dict[str, dict[str, list[float]]] = {n: {"p50": [], "p99": [], "rps": []} for n in procs}
        for _ in range(args.rounds):
            for name in ("bare", "bare-ll", "osd"):
                samples = asyncio.run(sequential(sockets[name], args.requests))
                results[name]["p50"].append(statistics.median(samples) * 1000)
                results[name]["p99"].append(percentile(samples, 0.99) * 1000)
                results[name]["rps"].append(asyncio.run(concurrent(sockets[name], args.clients, args.seconds)))
        calls_logged = sum(1 for line in open(work / "osd.log", "rb") if b"method=rpc.health" in line)
    finally:
        for proc in procs.values():
            proc.terminate()
            proc.wait(10)
        log.close()
        for p in work.iterdir():
            p.unlink() if p.is_file() or p.is_socket() else None
    med = {n: {k: statistics.median(v) for k, v in r.items()} for n, r in results.items()}
    print(f"rpc.health, {args.rounds} rounds (medians): sequential {args.requests} requests, "
          f"{args.clients} concurrent keep-alive clients for {args.seconds:g} s")
    print(f"{'server':8} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8}")
    for name in ("bare", "bare-ll", "osd"):
        print(f"{name:8} {med[name]['rps']:9.0f} {med[name]['p50']:8.3f} {med[name]['p99']:8.3f}")
    for ref in ("bare", "bare-ll"):
        print(f"ratio osd/{ref}: throughput {med['osd']['rps'] / med[ref]['rps']:.2f}x, "
              f"p50 {med['osd']['p50'] / med[ref]['p50']:.2f}x")
    print(f"(ACL file loaded; {calls_logged} calls logged)")
    work.rmdir() if not any(work.iterdir()) else None


if __name__ == "__main__":
    main()
