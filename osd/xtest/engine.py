"""The scenario engine: scenarios call methods through a Trial, which applies the profile.

A scenario is an async function of one ``Trial``, declared with the methods it answers
for. ``Trial.call`` applies the profile to every call: a method the profile skips (or whose
tier it does not allow) is not called; a method it expects to be unsupported must answer
-32010 with the expected reason; every other call must succeed and its result must match
the catalogue's result schema. A call that fails stops the scenario (``Stop``); the undo
calls registered with ``Trial.undo`` then run in reverse order, and the scenario's methods
it did not reach are recorded as not reached, with the reason.

Each method keeps a ``Ledger`` across scenarios; ``verdict`` turns it into the method's
outcome: passed, failed, unsupported (as expected), skipped or not-run.
"""

from __future__ import annotations

import asyncio
import dataclasses
import enum
import secrets
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

import jsonschema

from ..client import RpcError
from ..registry import Registry
from .profile import EXPECT_UNSUPPORTED, SKIPPED, Profile

if TYPE_CHECKING:  # lab.py imports Stop from here
    from .lab import Lab

NOT_SUPPORTED = -32010


class Outcome(enum.Enum):
    PASSED = "passed"
    FAILED = "failed"
    UNSUPPORTED = "unsupported"  # answered -32010 as the profile expects
    SKIPPED = "skipped"
    NOT_RUN = "not-run"          # its tier is not allowed by the profile


class Stop(Exception):
    """The scenario cannot go on; the message says why (it becomes the 'not reached' reason)."""


class Unreachable(Exception):
    """The daemon stopped answering (connection refused or reset)."""


Caller = Callable[[str, dict[str, Any]], Awaitable[Any]]  # raises RpcError or Unreachable


@dataclasses.dataclass
class Ledger:
    """What happened to one method over the whole run."""

    calls: int = 0
    seconds: float = 0.0
    succeeded: int = 0
    problems: list[str] = dataclasses.field(default_factory=list)
    unsupported: list[str] = dataclasses.field(default_factory=list)
    unreached: list[str] = dataclasses.field(default_factory=list)
    cases: dict[str, dict[str, str]] = dataclasses.field(default_factory=dict)  # case -> {outcome, detail}

    def case(self, name: str, outcome: str, detail: str = "", *, keep: bool = False) -> None:
        """Record what a case came to; ``keep``: only when nothing was recorded for it yet."""
        if not (keep and name in self.cases):
            self.cases[name] = {"outcome": outcome, "detail": detail}


@dataclasses.dataclass(frozen=True)
class Verdict:
    outcome: Outcome
    detail: str


@dataclasses.dataclass(frozen=True)
class Action:
    """What the profile says about one call: run it, expect -32010, or do not call it."""

    kind: str          # "run", "expect", "skip", "not-run"
    text: str = ""     # the reason fragment (expect) or the reason (skip, not-run)


def plan(profile: Profile, registry: Registry, method: str, case: str | None = None) -> Action:
    """The profile's rule for a call of ``method`` (optionally one case of its scenario)."""
    kind = profile.classification[method]
    if kind == SKIPPED:
        return Action("skip", profile.skipped[method])
    tier = registry.get(method).tier.value
    if tier not in profile.allow_tiers:
        return Action("not-run", f"tier {tier!r} is not in the profile's allow_tiers")
    key = f"{method}:{case}" if case else None
    if key and key in profile.skipped:
        return Action("skip", profile.skipped[key])
    if key and key in profile.expect_unsupported:
        return Action("expect", profile.expect_unsupported[key])
    if kind == EXPECT_UNSUPPORTED:
        return Action("expect", profile.expect_unsupported[method])
    return Action("run")


def verdict(profile: Profile, registry: Registry, method: str, ledger: Ledger) -> Verdict:
    """The outcome of ``method`` from what its calls did."""
    action = plan(profile, registry, method)
    if action.kind == "skip":
        return Verdict(Outcome.SKIPPED, action.text)
    if action.kind == "not-run":
        return Verdict(Outcome.NOT_RUN, action.text)
    if ledger.problems:
        more = f" (and {len(ledger.problems) - 1} more)" if len(ledger.problems) > 1 else ""
        return Verdict(Outcome.FAILED, ledger.problems[0] + more)
    if action.kind == "expect":
        if ledger.unsupported:
            return Verdict(Outcome.UNSUPPORTED, ledger.unsupported[0])
        return Verdict(Outcome.FAILED, _never_answered(ledger))
    if ledger.succeeded:
        return Verdict(Outcome.PASSED, "")
    return Verdict(Outcome.FAILED, _never_answered(ledger))


def _never_answered(ledger: Ledger) -> str:
    if ledger.unreached:
        return f"not reached: {ledger.unreached[0]}"
    return "no scenario called it"


@dataclasses.dataclass(frozen=True)
class Scenario:
    name: str
    methods: tuple[str, ...]      # the methods whose outcome this scenario answers for
    run: Callable[["Trial"], Awaitable[None]]
    cases: tuple[str, ...] = ()   # METHOD:CASE keys a profile may refine


class Scenarios:
    """An ordered table of scenarios; ``@table("name", methods=...)`` returns the function unchanged."""

    def __init__(self, *parts: "Scenarios") -> None:
        self._items: list[Scenario] = [s for part in parts for s in part]

    def __call__(self, name: str, *, methods: tuple[str, ...], cases: tuple[str, ...] = ()
                 ) -> Callable[[Callable[["Trial"], Awaitable[None]]], Callable[["Trial"], Awaitable[None]]]:
        def register(fn: Callable[["Trial"], Awaitable[None]]) -> Callable[["Trial"], Awaitable[None]]:
            self._items.append(Scenario(name, methods, fn, cases))
            return fn

        return register

    def __iter__(self) -> Iterator[Scenario]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)


class Trial:
    """One scenario's view of the run: calls through the profile, checks, undo, scratch names."""

    def __init__(self, *, scenario: Scenario, profile: Profile, registry: Registry, caller: Caller,
                 ledgers: dict[str, Ledger], lab: Lab, tag: str, timeout: float,
                 leftovers: list[str]) -> None:
        self.scenario = scenario
        self.profile = profile
        self.registry = registry
        self.lab = lab
        self.timeout = timeout
        self._caller = caller
        self._ledgers = ledgers
        self._tag = tag
        self._undo: list[tuple[str, dict[str, Any]]] = []
        self._leftovers = leftovers
        self.called: set[str] = set()

    # ------------------------------------------------------------ scratch
    def name(self, suffix: str) -> str:
        """A scratch name: profile prefix + run tag + ``suffix`` (interface-safe, <= 15 chars)."""
        name = f"{self.profile.scratch.name_prefix}{self._tag}{suffix}"
        if len(name) > 15:
            raise ValueError(f"scratch name {name!r} is longer than 15 characters")
        return name

    def disk(self, index: int) -> str:
        """Scratch disk number ``index`` (0-based); Stop when the lab has fewer."""
        disks = self.lab.disks
        if index >= len(disks):
            raise Stop(f"needs {index + 1} scratch disks, the lab has {len(disks)} "
                       "([scratch] disks, or loop_disks with --spawn)")
        return disks[index]

    # ------------------------------------------------------------ calls
    def ledger(self, method: str) -> Ledger:
        return self._ledgers.setdefault(method, Ledger())

    async def call(self, method: str, params: Mapping[str, Any] | None = None, *, case: str | None = None,
                   optional: bool = False, expect_error: int | tuple[int, ...] | None = None,
                   timeout: float | None = None, undo: tuple[str, Mapping[str, Any]] | None = None) -> Any:
        """Call ``method`` as the profile says; the result, or None.

        None (only with ``optional``) when the profile does not let the call be made or the
        call answered the -32010 the profile expects; without ``optional`` those raise Stop.
        ``expect_error``: the call must fail with that code, or one of those codes (the error
        object is returned).
        A failed call (error, timeout, broken connection) is recorded and raises Stop.
        ``undo``: (method, params) to call when the scenario ends, registered once this call
        has returned a result (see ``undo``).
        """
        params = dict(params or {})
        action = plan(self.profile, self.registry, method, case)
        ledger = self.ledger(method)
        label = f"{method}:{case}" if case else method
        if action.kind in ("skip", "not-run"):
            if case and action.kind == "skip":
                ledger.case(case, "skipped", action.text)
            if optional:
                return None
            raise Stop(f"{label} is not run here ({action.text})")
        self.called.add(method)
        started = time.monotonic()
        error: RpcError | None = None
        seconds = timeout or self.timeout
        try:
            result = await asyncio.wait_for(self._caller(method, params), seconds)
        except RpcError as exc:
            error = exc
        except asyncio.TimeoutError:
            self._record(method, started)
            return self._fail(method, case, f"no answer within {seconds:g} s", stop=True)
        except Unreachable as exc:
            self._record(method, started)
            ledger.problems.append(f"the daemon went away during the call: {exc}")
            raise
        self._record(method, started)
        if error is None and undo is not None:
            self.undo(*undo)
        if action.kind == "expect":
            return self._expected_unsupported(method, case, action.text, error, result if error is None else None,
                                              optional)
        if error is not None:
            if expect_error is not None and error.code in _codes(expect_error):
                ledger.succeeded += 1
                return {"code": error.code, "message": error.message, "data": error.data}
            return self._fail(method, case, _describe(error), stop=True)
        if expect_error is not None:
            return self._fail(method, case, f"expected error {expect_error}, got the result {_short(result)}",
                              stop=True)
        problem = self._schema_problem(method, result)
        if problem:
            self._fail(method, case, problem, stop=False)
        else:
            ledger.succeeded += 1
            if case:
                ledger.case(case, "passed", keep=True)
        self._forget_undo(method, params)
        return result

    def _record(self, method: str, started: float) -> None:
        ledger = self.ledger(method)
        ledger.calls += 1
        ledger.seconds += time.monotonic() - started

    def _expected_unsupported(self, method: str, case: str | None, fragment: str, error: RpcError | None,
                              result: Any, optional: bool) -> Any:
        label = f"{method}:{case}" if case else method
        if error is None:
            # It works after all: a failure of the profile's expectation; the result is
            # returned so that the scenario can undo what the call did.
            self._fail(method, case, f"expected -32010 mentioning {fragment!r}, but it succeeded", stop=False)
            return result
        reason = str((error.data or {}).get("reason", "")) if isinstance(error.data, dict) else ""
        if error.code != NOT_SUPPORTED or fragment.lower() not in reason.lower():
            self._fail(method, case, f"expected -32010 mentioning {fragment!r}, got {_describe(error)}", stop=True)
        ledger = self.ledger(method)
        ledger.unsupported.append(f"-32010: {reason}")
        if case:
            ledger.case(case, "unsupported", f"-32010: {reason}")
        if optional:
            return None
        raise Stop(f"{label} is not supported here, as the profile expects")

    def _fail(self, method: str, case: str | None, problem: str, *, stop: bool) -> Any:
        where = f"[{case}] " if case else ""
        self.ledger(method).problems.append(f"{where}{problem}")
        if case:
            self.ledger(method).case(case, "failed", problem)
        if stop:
            raise Stop(f"{method} failed: {problem}")
        return None

    def _schema_problem(self, method: str, result: Any) -> str:
        schema = dict(self.registry.get(method).result)
        error = jsonschema.exceptions.best_match(jsonschema.Draft7Validator(schema).iter_errors(result))
        if error is None:
            return ""
        where = "/" + "/".join(str(p) for p in error.absolute_path)
        return f"result breaks the catalogue's result schema at {where}: {error.message[:200]}"

    # ------------------------------------------------------------ checks
    def expect(self, method: str, ok: bool, what: str) -> bool:
        """Record a failed check of ``method`` unless ``ok``; returns ``ok``. Never raises."""
        if not ok:
            self.ledger(method).problems.append(f"check failed: {what}")
        return ok

    def expect_changed(self, method: str, result: Any, changed: bool, when: str) -> bool:
        """Check that a write result carries ``changed`` as expected."""
        ok = isinstance(result, dict) and result.get("changed") is changed
        return self.expect(method, ok, f"{when} reports changed: {str(changed).lower()} (got {_short(result)})")

    def unreached(self, method: str, why: str) -> None:
        self.ledger(method).unreached.append(why)

    # ------------------------------------------------------------ undo
    def undo(self, method: str, params: Mapping[str, Any]) -> None:
        """Call ``method(params)`` when the scenario ends, unless the scenario makes that call itself."""
        self._undo.append((method, dict(params)))

    def _forget_undo(self, method: str, params: dict[str, Any]) -> None:
        for i in range(len(self._undo) - 1, -1, -1):
            if self._undo[i] == (method, params):
                del self._undo[i]
                return

    async def run_undo(self) -> None:
        """Every pending undo call, newest first; what cannot be undone goes to the leftovers."""
        while self._undo:
            method, params = self._undo.pop()
            action = plan(self.profile, self.registry, method)
            if action.kind in ("skip", "not-run"):
                self._leftovers.append(f"{self.scenario.name}: {method} {params} not called ({action.text})")
                continue
            try:
                await asyncio.wait_for(self._caller(method, params), self.timeout)
            except (RpcError, asyncio.TimeoutError, Unreachable) as exc:
                why = (_describe(exc) if isinstance(exc, RpcError) else
                       f"no answer within {self.timeout:g} s" if isinstance(exc, asyncio.TimeoutError) else str(exc))
                self._leftovers.append(f"{self.scenario.name}: undo {method} {params} failed: {why}")


async def run_scenario(trial: Trial) -> str:
    """Run one scenario to its end (or Stop), then its undo calls; its status line."""
    status = "completed"
    try:
        await trial.scenario.run(trial)
    except Stop as stop:
        status = f"stopped: {stop}"
    except Unreachable as exc:
        status = f"daemon unreachable: {exc}"
    except Exception as exc:  # a bug in the scenario: reported, the run goes on
        status = f"scenario error: {type(exc).__name__}: {exc}"
        for method in trial.scenario.methods:
            if method in trial.called:
                trial.ledger(method).problems.append(status)
    finally:
        await trial.run_undo()
    why = status.split(": ", 1)[-1] if status != "completed" else f"the {trial.scenario.name} scenario ended first"
    for method in trial.scenario.methods:
        if method not in trial.called:
            trial.unreached(method, why)
    return status


def run_tag() -> str:
    """4 hex characters that make this run's scratch names unique on a shared host."""
    return secrets.token_hex(2)


def _codes(expected: int | tuple[int, ...]) -> tuple[int, ...]:
    return expected if isinstance(expected, tuple) else (expected,)


def _describe(error: RpcError) -> str:
    data = error.data
    reason = ""
    if isinstance(data, dict):
        reason = str(data.get("reason") or data.get("stderr") or "")
    text = f"error {error.code}: {error.message}"
    if reason and reason not in error.message:
        text += f" ({reason.strip()[:200]})"
    return text


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 120 else text[:117] + "..."
