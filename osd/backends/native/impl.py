"""``Implementations``: binds MethodSpecs to the native methods that carry them out.

A service class keeps one table and decorates its methods with it::

    implements = Implementations()

    class NetService:
        implementations = implements

        @implements(net.INTERFACES)
        async def interfaces(self, name: str | None = None) -> list[dict]: ...

The decorator returns the function unchanged and checks, at import, that its keyword
parameters are exactly the spec's params (required ones without a default, optional ones
with one), so the schema and the code cannot drift apart.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator, Mapping
from typing import Any, TypeVar

from ...registry import MethodSpec

F = TypeVar("F", bound=Callable[..., Any])


class Service:
    """Defaults for a native service: nothing to start or close, and always healthy.

    Subclasses set ``namespace`` and ``implementations`` and override what they need.
    """

    namespace: str
    implementations: "Implementations"

    async def start(self) -> None:
        """Load state and reconcile; nothing by default."""

    async def close(self) -> None:
        """Release handles; nothing by default."""

    async def health(self) -> dict[str, Any]:
        return {"ok": True, "status": "ok"}


class Implementations(Mapping[str, Callable[..., Any]]):
    def __init__(self) -> None:
        self._by_name: dict[str, Callable[..., Any]] = {}

    def __call__(self, spec: MethodSpec) -> Callable[[F], F]:
        def register(fn: F) -> F:
            _check_signature(spec, fn)
            if spec.name in self._by_name:
                raise TypeError(f"{spec.name} implemented twice")
            self._by_name[spec.name] = fn
            return fn

        return register

    def __getitem__(self, name: str) -> Callable[..., Any]:
        return self._by_name[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._by_name)

    def __len__(self) -> int:
        return len(self._by_name)


def _check_signature(spec: MethodSpec, fn: Callable[..., Any]) -> None:
    params = list(inspect.signature(fn).parameters.values())[1:]  # after self
    where = f"{fn.__qualname__} implementing {spec.name}"
    names = [p.name for p in params]
    if sorted(names) != sorted(spec.properties):
        raise TypeError(f"{where}: parameters {names} differ from the spec's {list(spec.properties)}")
    for p in params:
        if p.kind in (p.POSITIONAL_ONLY, p.VAR_POSITIONAL, p.VAR_KEYWORD):
            raise TypeError(f"{where}: parameter {p.name} must be passable by keyword")
        if (p.default is p.empty) != (p.name in spec.required):
            raise TypeError(f"{where}: {p.name} must have a default exactly when it is optional")
