"""Background jobs: a long-running tool (btrfs scrub, btrfs balance) run as an asyncio task.

The event loop stays free (tools.run is async); the job keeps when it started and ended,
and how it ended, for the status methods. Closing the service cancels running jobs, which
kills their tool.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Sequence
from typing import Any

from .... import tools
from ....errors import OsdError

log = logging.getLogger("osd.vol.jobs")
JOB_DEADLINE_S = 7 * 24 * 3600.0


@dataclasses.dataclass
class Job:
    kind: str
    key: str
    argv: tuple[str, ...]
    started_at: float
    task: asyncio.Task[None] | None = None
    finished_at: float | None = None
    outcome: str = "running"      # running, finished, failed, cancelled
    message: str = ""
    output: str = ""              # the tool's stdout once it finished

    @property
    def running(self) -> bool:
        return self.task is not None and not self.task.done()

    def describe(self) -> dict[str, Any]:
        return {"argv": list(self.argv), "started_at": self.started_at, "finished_at": self.finished_at,
                "outcome": self.outcome, "message": self.message}


class Jobs:
    def __init__(self) -> None:
        self._jobs: dict[tuple[str, str], Job] = {}

    def get(self, kind: str, key: str) -> Job | None:
        return self._jobs.get((kind, key))

    def start(self, kind: str, key: str, argv: Sequence[str]) -> Job:
        """Start ``argv`` as job (kind, key); the caller checked that none is running."""
        job = Job(kind, key, tuple(argv), time.time())
        job.task = asyncio.get_running_loop().create_task(self._run(job), name=f"{kind}:{key}")
        self._jobs[(kind, key)] = job
        return job

    async def _run(self, job: Job) -> None:
        try:
            result = await tools.run(job.argv, deadline_s=JOB_DEADLINE_S)
            job.outcome, job.output = "finished", result.stdout
            text = result.stdout.strip() or result.stderr.strip()
            job.message = text.splitlines()[-1] if text else ""
        except OsdError as exc:
            job.outcome, job.message = "failed", exc.message
            log.warning("%s on %s failed: %s", job.kind, job.key, exc.message)
        except asyncio.CancelledError:
            job.outcome, job.message = "cancelled", "the daemon stopped"
            raise
        finally:
            job.finished_at = time.time()

    async def close(self) -> None:
        tasks = [j.task for j in self._jobs.values() if j.task is not None and not j.task.done()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
