"""``osd xtest``: load the profile, reach (or spawn) the daemon, run the scenarios, report.

Exit status (SPEC §7): 0 every method behaved as the profile says; 1 failures (a method,
or registration); 2 usage; 3 the daemon could not be reached (or spawned); 4 the profile
is invalid; 130 interrupted (SIGINT or SIGTERM: the scenario in progress is undone, the
lab torn down and the report written all the same).
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import json
import os
import signal
import sys
import tempfile
import time
import traceback
from collections.abc import Iterable
from pathlib import Path
from typing import Any, TextIO

from .. import __version__, methods
from ..client import RpcError
from ..registry import Registry
from . import report as reports
from . import spawn
from .connection import Connection
from .engine import Ledger, Scenario, Trial, Unreachable, plan, run_scenario, run_tag, verdict
from .lab import Lab, LabError, collect_orphans
from .profile import Profile, ProfileError, ProfileNotFound, load

EXIT_PASS, EXIT_FAIL, EXIT_USAGE, EXIT_UNREACHABLE, EXIT_PROFILE, EXIT_INTERRUPTED = 0, 1, 2, 3, 4, 130


@dataclasses.dataclass(frozen=True)
class Options:
    profile: str
    socket: str | None = None
    spawn: bool = False
    report: str = "xtest-report.json"
    timeout_default: float = 60.0
    quiet: bool = False
    json_stdout: bool = False


def main(options: Options, *, scenarios: Iterable[Scenario] | None = None,
         out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> int:
    """Run ``osd xtest``; the exit status. ``scenarios`` defaults to the shipped ones."""
    if scenarios is None:
        from .scenarios import SCENARIOS as scenarios
    scenarios = list(scenarios)
    if options.spawn == (options.socket is not None):
        print("osd xtest: give exactly one of --socket PATH (a live daemon) or --spawn", file=err)
        return EXIT_USAGE
    if options.timeout_default <= 0:
        print("osd xtest: --timeout-default must be a positive number of seconds", file=err)
        return EXIT_USAGE
    if options.spawn and os.geteuid() != 0:
        print("osd xtest: --spawn needs root (it makes network namespaces and loop devices)", file=err)
        return EXIT_USAGE
    cases = {case for s in scenarios for case in s.cases}
    try:
        profile = load(options.profile, cases=cases)
    except ProfileNotFound as exc:
        print(f"osd xtest: {exc}", file=err)
        return EXIT_USAGE
    except ProfileError as exc:
        print(f"osd xtest: {exc}", file=err)
        return EXIT_PROFILE
    run = Run(profile, options, scenarios, err=err)
    code = asyncio.run(run.main())
    doc = run.report
    if options.json_stdout:
        print(json.dumps(doc, indent=2), file=out)
    elif options.quiet:
        print(reports.result_line(doc), file=out)
    else:
        print(reports.render(doc), file=out)
    return code


class Run:
    """One conformance run: its lab, its ledgers and the report they become."""

    def __init__(self, profile: Profile, options: Options, scenarios: list[Scenario], *, err: TextIO) -> None:
        self.profile = profile
        self.options = options
        self.scenarios = scenarios
        self.registry: Registry = methods.registry()
        self.err = err
        self.ledgers: dict[str, Ledger] = {}
        self.leftovers: list[str] = []
        self.scenario_log: list[dict[str, Any]] = []
        self.registration: dict[str, Any] = {}
        self.daemon: dict[str, Any] = {"mode": "spawn" if options.spawn else "socket", "socket": options.socket}
        self.lab: Lab | None = None
        self.collected: list[str] = []  # labs of killed runs undone before this one
        self.error = ""
        self.report: dict[str, Any] = {}

    def progress(self, text: str) -> None:
        if not self.options.quiet:
            print(f"xtest: {text}", file=self.err, flush=True)

    # ------------------------------------------------------------ the run
    async def main(self) -> int:
        started = _now()
        loop = asyncio.get_running_loop()
        work = asyncio.create_task(self.work())
        interrupted = False

        def interrupt() -> None:
            nonlocal interrupted
            if not interrupted:
                interrupted = True
                self.progress("interrupted: undoing the current scenario, tearing the lab down")
                work.cancel()

        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, interrupt)
        code = EXIT_FAIL
        try:
            code = await work
        except asyncio.CancelledError:
            code = EXIT_INTERRUPTED
        except Exception as exc:  # a runner bug: still tear down and report
            self.error = f"runner error: {type(exc).__name__}: {exc}"
            traceback.print_exc(file=self.err)
            code = EXIT_FAIL
        finally:
            teardown = await self.lab.teardown() if self.lab is not None else []
            for signum in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(signum)
        if interrupted:
            code = EXIT_INTERRUPTED
        self.report = self.build_report(started, code, teardown)
        if self.lab is not None:
            logs = sorted(str(p) for p in self.lab.rundir.glob("*.log"))
            if self.report["result"] != "PASS" and logs:
                self.report["logs"] = logs  # kept for a look at what went wrong
            else:
                kept = self.lab.remove_rundir()
                if kept:
                    self.report["teardown"].append(kept)
        try:
            reports.write(self.options.report, self.report)
            self.report["report_path"] = os.path.abspath(self.options.report)
        except OSError as exc:
            print(f"osd xtest: cannot write the report {self.options.report}: {exc.strerror}", file=self.err)
        return int(self.report["exit_code"])

    async def work(self) -> int:
        for line in await collect_orphans():
            self.progress(line)
            self.collected.append(line)
        rundir = Path(tempfile.mkdtemp(prefix="osdx-", dir="/tmp"))  # short: socket paths max 107 bytes
        self.lab = lab = Lab(rundir)
        scratch = self.profile.scratch
        try:
            if self.options.spawn:
                self.progress(f"building the lab in {rundir} ({scratch.loop_disks} loop disks)")
                await spawn.build(lab, scratch)
                socket_path = await spawn.start_daemon(lab)
                self.daemon.update(socket=socket_path, netns=lab.netns, log=str(rundir / "daemon.log"),
                                   disks=list(lab.disks))
            else:
                socket_path = str(self.options.socket)
                lab.disks = list(scratch.disks)
            lab.mount_point = lab.make_dir(scratch.mount_point or lab.mount_point)
        except (LabError, spawn.SpawnError, OSError) as exc:
            self.error = f"could not {'spawn the daemon' if self.options.spawn else 'prepare the lab'}: {exc}"
            self.progress(self.error)
            return EXIT_UNREACHABLE
        async with Connection(socket_path) as conn:
            try:
                await self.check_registration(conn)
            except Unreachable as exc:
                self.error = f"cannot reach the daemon: {exc}"
                self.progress(self.error)
                return EXIT_UNREACHABLE
            await self.run_scenarios(conn, lab)
        return EXIT_PASS

    async def check_registration(self, conn: Connection) -> None:
        """rpc.discover against must_be_registered and must_be_unregistered; raises Unreachable."""
        try:
            discover = await asyncio.wait_for(conn.call("rpc.discover", {}), self.options.timeout_default)
            health = await asyncio.wait_for(conn.call("rpc.health", {}), self.options.timeout_default)
        except asyncio.TimeoutError as exc:
            raise Unreachable(f"no answer to rpc.discover or rpc.health within {self.options.timeout_default:g} s") \
                from exc
        except RpcError as exc:
            self.registration = {"ok": False, "error": f"rpc.discover: error {exc.code}: {exc.message}",
                                 "missing": [], "unexpected": []}
            return
        served = {m.get("name") for m in discover.get("methods", []) if isinstance(m, dict)}
        self.daemon["version"] = (discover.get("info") or {}).get("version")
        self.daemon["backend"] = health.get("mode") if isinstance(health, dict) else None
        missing = sorted(self.profile.must_be_registered - served)
        unexpected = sorted(self.profile.must_be_unregistered & served)
        self.registration = {"ok": not missing and not unexpected, "registered": len(served),
                             "missing": missing, "unexpected": unexpected}
        self.progress(f"daemon {self.daemon['socket']}: osd {self.daemon['version']}, "
                      f"{self.daemon['backend']} backend, {len(served)} methods registered")

    async def run_scenarios(self, conn: Connection, lab: Lab) -> None:
        tag = run_tag()
        total = len(self.scenarios)
        for number, scenario in enumerate(self.scenarios, 1):
            started = time.monotonic()
            trial = Trial(scenario=scenario, profile=self.profile, registry=self.registry, caller=conn.call,
                          ledgers=self.ledgers, lab=lab, tag=tag, timeout=self.options.timeout_default,
                          leftovers=self.leftovers)
            entry = {"name": scenario.name, "status": "interrupted", "duration_s": 0.0}
            self.scenario_log.append(entry)
            if all(plan(self.profile, self.registry, m).kind in ("skip", "not-run") for m in scenario.methods):
                entry["status"] = "skipped: the profile runs none of its methods"
                continue
            try:
                entry["status"] = await run_scenario(trial)
            finally:
                entry["duration_s"] = round(time.monotonic() - started, 3)
            self.progress(f"[{number}/{total}] {scenario.name}: {entry['status']} ({entry['duration_s']:.2f} s)")
            if entry["status"].startswith("daemon unreachable"):
                self.error = entry["status"]
                break

    # ------------------------------------------------------------ the report
    def build_report(self, started: str, code: int, teardown: list[str]) -> dict[str, Any]:
        run_scenarios = {s["name"] for s in self.scenario_log}
        for scenario in self.scenarios:  # scenarios that never started: interrupted or unreachable
            if scenario.name not in run_scenarios:
                for method in scenario.methods:
                    self.ledgers.setdefault(method, Ledger()).unreached.append(
                        "the run was interrupted" if code == EXIT_INTERRUPTED else self.error or "not started")
        entries: dict[str, dict[str, Any]] = {}
        for spec in self.registry:
            ledger = self.ledgers.get(spec.name, Ledger())
            judged = verdict(self.profile, self.registry, spec.name, ledger)
            entries[spec.name] = {
                "namespace": spec.namespace, "tier": spec.tier.value,
                "classification": self.profile.classification[spec.name],
                "outcome": judged.outcome.value, "detail": judged.detail,
                "calls": ledger.calls, "duration_s": round(ledger.seconds, 3), "cases": dict(ledger.cases),
            }
        failed = [name for name, e in entries.items() if e["outcome"] == "failed"]
        if code == EXIT_UNREACHABLE:
            result = "UNREACHABLE"
        elif code == EXIT_INTERRUPTED:
            result = "INTERRUPTED"
        elif failed or self.error or not self.registration.get("ok", False):
            result, code = "FAIL", EXIT_FAIL
        else:
            result, code = "PASS", EXIT_PASS
        total, per = reports.counts(entries)
        doc: dict[str, Any] = {
            "format": reports.FORMAT, "version": reports.VERSION, "osd_xtest": __version__,
            "profile": {"name": self.profile.name, "path": self.profile.path,
                        "description": self.profile.description, "allow_tiers": sorted(self.profile.allow_tiers)},
            "daemon": self.daemon, "started": started, "finished": _now(),
            "timeout_default_s": self.options.timeout_default,
            "registration": self.registration, "methods": entries, "scenarios": self.scenario_log,
            "counts": total, "namespaces": per, "failed": failed, "leftovers": self.leftovers,
            "teardown": teardown, "collected": self.collected, "result": result, "exit_code": code,
        }
        if self.error:
            doc["error"] = self.error
        return doc


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
