"""MethodSpec (one method, declared once as data) and the Registry that derives the rest.

One MethodSpec drives parameter validation, the ACL check, ``rpc.discover``, the native
implementation's signature check and proxy forwarding.
"""

from __future__ import annotations

import dataclasses
import enum
import ipaddress
import re
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import jsonschema

from . import __version__
from .errors import InvalidParams, MethodNotFound


class Right(enum.IntEnum):
    """Hierarchical rights: admin implies write implies read."""

    NONE = 0
    READ = 1
    WRITE = 2
    ADMIN = 3

    @classmethod
    def parse(cls, text: str) -> "Right":
        try:
            return cls[text.upper()]
        except KeyError:
            raise ValueError(f"unknown right {text!r} (none, read, write or admin)") from None

    def __str__(self) -> str:
        return self.name.lower()


class Tier(enum.Enum):
    """How much a call can disturb the host (see methods.toml)."""

    READ = "read"
    SCRATCH = "scratch"
    SHARED = "shared"
    DISRUPTIVE = "disruptive"
    DESTRUCTIVE = "destructive"
    RAID = "raid"
    MOS = "mos"


@dataclasses.dataclass(frozen=True)
class MethodSpec:
    name: str
    right: Right
    tier: Tier
    summary: str
    params: Mapping[str, Any]  # JSON Schema of the params object
    result: Mapping[str, Any]  # JSON Schema of the result
    description: str = ""

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[a-z]+(\.[a-z_]+)+", self.name):
            raise ValueError(f"bad method name {self.name!r}")
        if self.params.get("type") != "object" or self.params.get("additionalProperties", True):
            raise ValueError(f"{self.name}: params schema must be a closed object")
        missing = set(self.required) - set(self.properties)
        if missing:
            raise ValueError(f"{self.name}: required params without a schema: {sorted(missing)}")

    @property
    def namespace(self) -> str:
        return self.name.split(".", 1)[0]

    @property
    def properties(self) -> Mapping[str, Any]:
        return self.params.get("properties", {})

    @property
    def required(self) -> tuple[str, ...]:
        return tuple(self.params.get("required", ()))

    @property
    def optional(self) -> tuple[str, ...]:
        return tuple(p for p in self.properties if p not in self.required)


# ---------------------------------------------------------------- formats
# Semantic checks JSON Schema patterns cannot express; registered on one FormatChecker.
FORMATS = jsonschema.FormatChecker(formats=())


@FORMATS.checks("ip-address", raises=ValueError)
def _ip_address(value: object) -> bool:
    return not isinstance(value, str) or bool(ipaddress.ip_address(value))


@FORMATS.checks("ip-network", raises=ValueError)
def _ip_network(value: object) -> bool:
    if isinstance(value, str):
        ipaddress.ip_network(value, strict=False)
    return True


@FORMATS.checks("port-range", raises=ValueError)
def _port_range(value: object) -> bool:
    if isinstance(value, str):
        low, high = (int(p) for p in value.split("-"))
        if not 1 <= low <= high <= 65535:
            raise ValueError(f"{value!r} is not a port range within 1-65535 with low <= high")
    return True


def _pattern(validator: Any, pattern: str, instance: Any, schema: Any) -> Iterator[jsonschema.ValidationError]:
    """JSON Schema's pattern with ECMA-262's ``$``, which matches only at the very end; in
    Python it also matches before a final newline, so "br0\\n" passed an anchored pattern."""
    if not validator.is_type(instance, "string"):
        return
    anchored = pattern[:-1] + r"\Z" if pattern.endswith("$") and not pattern.endswith(r"\$") else pattern
    if re.search(anchored, instance) is None:
        yield jsonschema.ValidationError(f"{instance!r} does not match {pattern!r}")


# Params are checked with Draft 7, two points stricter than Python's jsonschema reads it:
# ``$`` as above, and an integer is a JSON number without a fraction (80.0 is not a port:
# the backends would get a float).
Validator = jsonschema.validators.extend(
    jsonschema.Draft7Validator, validators={"pattern": _pattern},
    type_checker=jsonschema.Draft7Validator.TYPE_CHECKER.redefine(
        "integer", lambda checker, value: isinstance(value, int) and not isinstance(value, bool)))


def _pick(errors: Iterable[jsonschema.ValidationError]) -> jsonschema.ValidationError | None:
    """The error to report: a problem with one param before a cross-param rule (root anyOf)."""
    errors = list(errors)
    specific = [e for e in errors if e.absolute_path or e.validator in ("required", "additionalProperties", "type")]
    return jsonschema.exceptions.best_match(specific or errors)


def _explain(error: jsonschema.ValidationError) -> str:
    """Why a value was refused, in words: the format's own complaint, or the schema's description."""
    for candidate in (error, *error.context):
        if candidate.cause is not None:
            return str(candidate.cause)
    description = error.schema.get("description") if isinstance(error.schema, dict) else None
    if error.validator in ("anyOf", "oneOf", "pattern", "format") and description:
        return f"{error.instance!r} is not {description}"
    return error.message


def _error_path(error: jsonschema.ValidationError) -> tuple[str, str]:
    """The offending params path as a JSON pointer, and a one-line reason."""
    parts = [str(p) for p in error.absolute_path]
    instance = error.instance
    if error.validator == "required" and isinstance(instance, dict):
        missing = [k for k in error.validator_value if k not in instance]
        if missing:
            parts.append(missing[0])
            return "/" + "/".join(parts), f"missing required param {missing[0]!r}"
    if error.validator == "additionalProperties" and isinstance(instance, dict):
        known = error.schema.get("properties", {})
        extra = sorted(k for k in instance if k not in known)
        if extra:
            parts.append(extra[0])
            return "/" + "/".join(parts), f"unknown param {extra[0]!r}"
    if not parts and error.validator == "anyOf":
        sets = [" and ".join(a.get("required", ())) for a in error.validator_value]
        return "/", f"at least one of {', '.join(sets)} is required"
    where = "/" + "/".join(parts)
    return where, f"{where if parts else 'params'}: {_explain(error)}"


class Registry:
    """Every method by name; validates params and writes the OpenRPC document."""

    def __init__(self, specs: Iterable[MethodSpec]) -> None:
        self._specs: dict[str, MethodSpec] = {}
        for spec in specs:
            if spec.name in self._specs:
                raise ValueError(f"method {spec.name} declared twice")
            self._specs[spec.name] = spec
        self._validators: dict[str, Any] = {}

    def __iter__(self) -> Iterator[MethodSpec]:
        return iter(self._specs.values())

    def __len__(self) -> int:
        return len(self._specs)

    def __contains__(self, name: object) -> bool:
        return name in self._specs

    def get(self, name: str) -> MethodSpec:
        """The spec of ``name``; raises MethodNotFound."""
        try:
            return self._specs[name]
        except KeyError:
            raise MethodNotFound(f"method not found: {name}", {"method": name}) from None

    def renamed(self, renames: Mapping[str, str]) -> "Registry":
        """The same methods with namespaces renamed (``{"net": "mosnet"}``)."""

        def rename(spec: MethodSpec) -> MethodSpec:
            upstream = renames.get(spec.namespace)
            if upstream is None:
                return spec
            return dataclasses.replace(spec, name=upstream + spec.name[len(spec.namespace):])

        return Registry(rename(s) for s in self)

    def validate(self, spec: MethodSpec, params: Any) -> dict[str, Any]:
        """Params checked against the spec's schema; raises InvalidParams with the path."""
        if params is None:
            params = {}
        if not isinstance(params, dict):
            raise InvalidParams("params must be an object (by-name parameters)", "")
        if not params and not spec.required:
            return params
        validator = self._validators.get(spec.name)
        if validator is None:
            validator = Validator(dict(spec.params), format_checker=FORMATS)
            self._validators[spec.name] = validator
        error = _pick(validator.iter_errors(params))
        if error is not None:
            path, reason = _error_path(error)
            raise InvalidParams(reason, path)
        return params

    def openrpc(self) -> dict[str, Any]:
        """An OpenRPC 1.3.2 document of every method, with x-right and x-tier."""
        return {
            "openrpc": "1.3.2",
            "info": {
                "title": "osd",
                "version": __version__,
                "description": "Node networking (net.*) and storage (vol.*) as one JSON-RPC 2.0 API.",
            },
            "methods": [_openrpc_method(spec) for spec in self],
        }


def _openrpc_method(spec: MethodSpec) -> dict[str, Any]:
    params = []
    for name, schema in spec.properties.items():
        descriptor: dict[str, Any] = {"name": name, "required": name in spec.required, "schema": schema}
        if "description" in schema:
            descriptor["description"] = schema["description"]
        params.append(descriptor)
    method: dict[str, Any] = {
        "name": spec.name,
        "summary": spec.summary,
        "paramStructure": "by-name",
        "params": params,
        "result": {"name": "result", "schema": dict(spec.result)},
        "x-right": str(spec.right),
        "x-tier": spec.tier.value,
    }
    extra = [s for s in (spec.description, _constraints(spec.params)) if s]
    if extra:
        method["description"] = " ".join(extra)
    return method


def _constraints(params: Mapping[str, Any]) -> str:
    """Cross-parameter rules (anyOf of required sets) in words, for the OpenRPC document."""
    alternatives = params.get("anyOf", ())
    sets = [" and ".join(a["required"]) for a in alternatives if "required" in a]
    return f"At least one of: {', '.join(sets)}." if sets else ""
