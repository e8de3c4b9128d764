"""Btrfs scrub and balance: started in the background, with status from the job and the kernel."""

from __future__ import annotations

import asyncio
from typing import Any

from .... import tools
from ....methods import vol
from ..impl import Implementations, Service
from . import btrfs_text
from .btrfs import BtrfsPath
from .context import VolContext
from .jobs import Jobs

implements = Implementations()
_FILTER_FLAGS = {"data": "-d", "metadata": "-m", "system": "-s"}


class MaintenanceService(Service):
    namespace = "vol"
    implementations = implements

    def __init__(self, ctx: VolContext) -> None:
        self.ctx = ctx
        self.jobs = Jobs()
        # A start checks that no job runs, then starts one: two calls must not both pass the check.
        self._starting = asyncio.Lock()

    async def close(self) -> None:
        await self.jobs.close()

    @staticmethod
    def _key(where: BtrfsPath) -> str:
        return where.uuid or where.target

    async def _scrub(self, where: BtrfsPath) -> dict[str, Any]:
        result = await tools.run(["btrfs", "scrub", "status", "-R", where.target], deadline_s=30)
        return btrfs_text.parse_scrub_status(result.stdout)

    async def _balance(self, where: BtrfsPath) -> dict[str, Any]:
        # exit 1 means "a balance is running" for btrfs-progs, not a failure
        result = await tools.run(["btrfs", "balance", "status", where.target], ok=(0, 1), deadline_s=30)
        return btrfs_text.parse_balance_status(result.stdout)

    # ------------------------------------------------------------ scrub
    @implements(vol.SCRUB_START)
    async def scrub_start(self, path: str) -> dict[str, Any]:
        """Start a scrub of the filesystem holding ``path``. Idempotent: a scrub already running
        (ours or another's) is changed=false. Raises NotFound, InvalidParams (not btrfs)."""
        where = BtrfsPath(path)
        async with self._starting:
            job = self.jobs.get("scrub", self._key(where))
            if (job and job.running) or (await self._scrub(where))["status"] == "running":
                return {"changed": False, "path": where.target, "running": True}
            # -R: the final figures in the job's own output, in the format of 'scrub status -R'
            self.jobs.start("scrub", self._key(where), ["btrfs", "scrub", "start", "-B", "-R", where.target])
        return {"changed": True, "path": where.target, "running": True}

    @implements(vol.SCRUB_STATUS)
    async def scrub_status(self, path: str) -> dict[str, Any]:
        """The kernel's scrub figures (status: never, running, finished, aborted, interrupted; byte and
        error counters) plus the daemon's job (``job``: argv, times, outcome, message). Read-only."""
        where = BtrfsPath(path)
        status = await self._scrub(where)
        job = self.jobs.get("scrub", self._key(where))
        if job and not job.running and job.output:
            # btrfs-progs rewrites its status file in place while the scrub runs and once more
            # at its end; a read at the wrong moment finds it empty, or with the figures of the
            # last progress write (seen: 13 of 20 MiB under load, with "finished"). The job's
            # own output holds the final figures of the same scrub, so they stand in, unless
            # the file tells of a scrub started since.
            final = btrfs_text.parse_scrub_status(job.output)
            if final["status"] != "never" and status.get("started") in (None, final.get("started")):
                status = final
        running = bool(job and job.running) or status["status"] == "running"
        if running:
            status["status"] = "running"
        return {"running": running, **status, "path": where.target, "job": job.describe() if job else None}

    # ------------------------------------------------------------ balance
    @implements(vol.BALANCE_START)
    async def balance_start(self, path: str, filters: dict[str, str] | None = None) -> dict[str, Any]:
        """Start a balance (``filters`` per chunk type, e.g. {"data": "usage=50"}; none: a full
        balance). Idempotent: a balance already running or paused is changed=false."""
        where = BtrfsPath(path)
        argv = ["btrfs", "balance", "start"]
        for kind, value in (filters or {}).items():
            argv.append(_FILTER_FLAGS[kind] + value)
        if not filters:
            argv.append("--full-balance")  # otherwise btrfs-progs waits 10 s to let a human cancel
        elif "system" in filters:
            argv.append("--force")  # btrfs-progs wants it for system chunk filters
        async with self._starting:
            job = self.jobs.get("balance", self._key(where))
            if (job and job.running) or (await self._balance(where))["status"] != "none":
                return {"changed": False, "path": where.target, "running": True}
            self.jobs.start("balance", self._key(where), [*argv, where.target])
        return {"changed": True, "path": where.target, "running": True}

    @implements(vol.BALANCE_STATUS)
    async def balance_status(self, path: str) -> dict[str, Any]:
        """The kernel's balance state (none, running, paused; chunk progress) plus the daemon's
        last balance job on this filesystem. Read-only."""
        where = BtrfsPath(path)
        status = await self._balance(where)
        job = self.jobs.get("balance", self._key(where))
        running = bool(job and job.running) or status["status"] == "running"
        if running:
            status["status"] = "running"
        return {"running": running, **status, "path": where.target, "job": job.describe() if job else None}
