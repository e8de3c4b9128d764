"""Command line: osd serve | call | methods | keygen | xtest.

Exit status of ``osd call``: 0 success, 1 a JSON-RPC error (printed on stderr), 2 usage,
3 the daemon could not be reached.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from typing import Any

from . import __version__
from .config import DEFAULT_SOCKET

EXIT_OK, EXIT_RPC_ERROR, EXIT_USAGE, EXIT_UNREACHABLE = 0, 1, 2, 3


def _default_socket() -> str:
    return os.path.expanduser(os.environ.get("OSD_SOCKET") or DEFAULT_SOCKET)


# ---------------------------------------------------------------- serve
def cmd_serve(args: argparse.Namespace) -> int:
    import asyncio

    from . import config as configuration
    from .server import ServeError, serve
    from .state import StateError

    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    renames = {}
    for item in args.rename:
        namespace, sep, upstream = item.partition("=")
        if not sep:
            print(f"osd serve: --rename takes NS=UP, not {item!r}", file=sys.stderr)
            return EXIT_USAGE
        renames[namespace] = upstream
    try:
        config = configuration.load(
            args.config,
            overrides={
                "server": {"socket": args.socket, "state_dir": args.state_dir, "acl": args.acl,
                           "backend": args.backend},
                "proxy": {"upstream_net": args.upstream_net, "upstream_vol": args.upstream_vol},
            },
            renames=renames,
            verbose=args.verbose,
        )
        backend = _backend(config)
        return asyncio.run(serve(config, backend))
    except (configuration.ConfigError, ServeError, StateError) as exc:
        logging.getLogger("osd").error("%s", exc)
        return 1


def _backend(config: Any) -> Any:
    if config.server.backend == "proxy":
        from .backends.proxy import ProxyBackend

        return ProxyBackend(config)
    from .backends.native import create

    return create(config)


# ---------------------------------------------------------------- call
def _coerce(method: str, pairs: list[str]) -> dict[str, Any]:
    """key=value pairs as params: strings where the schema wants a string, else JSON; key:=json is JSON."""
    from . import methods

    registry = methods.registry()
    properties = registry.get(method).properties if method in registry else {}
    params: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise ValueError(f"{pair!r} is not key=value")
        if key.endswith(":"):
            params[key[:-1]] = json.loads(value)
        elif properties.get(key, {}).get("type") == "string":
            params[key] = value
        else:
            try:
                params[key] = json.loads(value)
            except ValueError:
                params[key] = value
    return params


def cmd_call(args: argparse.Namespace) -> int:
    from .client import Client, ClientError, load_key

    try:
        key = load_key(args.key) if args.key else None
    except (OSError, ClientError) as exc:
        print(f"osd call: {exc}", file=sys.stderr)
        return EXIT_USAGE
    token = args.token or os.environ.get("OSD_TOKEN") or None
    try:
        if args.method is None:
            payload = json.loads(sys.stdin.buffer.read())
        elif len(args.params) == 1 and args.params[0].lstrip().startswith("{"):
            payload = {"jsonrpc": "2.0", "id": 1, "method": args.method, "params": json.loads(args.params[0])}
        else:
            payload = {"jsonrpc": "2.0", "id": 1, "method": args.method}
            if args.params:
                payload["params"] = _coerce(args.method, args.params)
    except ValueError as exc:
        print(f"osd call: bad params: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        with Client(args.socket, key=key, token=token, timeout=args.timeout) as client:
            reply = client.request(payload)
    except ClientError as exc:
        print(f"osd call: {exc}", file=sys.stderr)
        return EXIT_UNREACHABLE
    return _print_reply(reply, whole=args.method is None)


def _print_reply(reply: Any, *, whole: bool) -> int:
    replies = reply if isinstance(reply, list) else [] if reply is None else [reply]
    errors = [r["error"] for r in replies if isinstance(r, dict) and "error" in r]
    for error in errors:
        data = f" {json.dumps(error['data'])}" if "data" in error else ""
        print(f"osd: error {error.get('code')}: {error.get('message')}{data}", file=sys.stderr)
    if whole:
        if reply is not None:
            print(json.dumps(reply, indent=2))
    elif not errors:
        print(json.dumps(replies[0].get("result"), indent=2))
    return EXIT_RPC_ERROR if errors else EXIT_OK


# ---------------------------------------------------------------- methods, keygen
def cmd_methods(args: argparse.Namespace) -> int:
    from . import methods

    for spec in methods.registry():
        params = ", ".join([*spec.required, *(f"[{p}]" for p in spec.optional)])
        print(f"{spec.name:28} {spec.right!s:6} {spec.tier.value:11} {params}")
    return EXIT_OK


def cmd_keygen(args: argparse.Namespace) -> int:
    from .client import keygen

    try:
        public = keygen(args.path)
    except FileExistsError:
        print(f"osd keygen: {args.path} exists; not overwriting a key", file=sys.stderr)
        return EXIT_USAGE
    print(public)
    print(f"wrote {args.path} (private, mode 0600) and {args.path}.pub; add the public key to a group's users",
          file=sys.stderr)
    return EXIT_OK


# ---------------------------------------------------------------- xtest
def cmd_xtest(args: argparse.Namespace) -> int:
    from .xtest.runner import Options, main as xtest_main

    return xtest_main(Options(profile=args.profile, socket=args.socket, spawn=args.spawn, report=args.report,
                              timeout_default=args.timeout_default, quiet=args.quiet,
                              json_stdout=args.json_stdout))


# ---------------------------------------------------------------- parser
def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="osd", description="Node networking and storage as one JSON-RPC 2.0 API.")
    top.add_argument("--version", action="version", version=f"osd {__version__}")
    sub = top.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the daemon in the foreground")
    serve.add_argument("--config", metavar="F", help="TOML config with [server], [net], [vol], [proxy]")
    serve.add_argument("--socket", metavar="P", help=f"Unix socket to listen on (default $OSD_SOCKET or {DEFAULT_SOCKET})")
    serve.add_argument("--state-dir", metavar="D", help="where managed objects are recorded (default /var/lib/osd)")
    serve.add_argument("--acl", metavar="F", help="ACL file (default: built-in policy: uid 0 admin, others read)")
    serve.add_argument("--backend", choices=["native", "proxy"], help="native (default) or proxy (MOS nodes)")
    serve.add_argument("--upstream-net", metavar="P", help="proxy: socket of the networking daemon")
    serve.add_argument("--upstream-vol", metavar="P", help="proxy: socket of the storage daemon")
    serve.add_argument("--rename", metavar="NS=UP", action="append", default=[],
                       help="serve namespace NS under the name UP (e.g. net=mosnet); repeatable")
    serve.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    serve.set_defaults(func=cmd_serve)

    call = sub.add_parser("call", help="call a method and print its result",
                          description="With no METHOD, read a whole JSON-RPC request or batch from stdin.")
    call.add_argument("method", nargs="?", metavar="METHOD")
    call.add_argument("params", nargs="*", metavar="PARAMS_JSON | key=value",
                      help="a JSON object, or key=value pairs (key:=json forces JSON)")
    call.add_argument("--socket", default=_default_socket(), help="daemon socket (default $OSD_SOCKET or the default)")
    call.add_argument("--key", metavar="FILE", help="sign the request with this key (see osd keygen)")
    call.add_argument("--token", help="send a bearer token (or set OSD_TOKEN)")
    call.add_argument("--timeout", type=float, default=300.0, help="seconds to wait for the reply")
    call.set_defaults(func=cmd_call)

    listing = sub.add_parser("methods", help="list every method with its right, tier and params")
    listing.set_defaults(func=cmd_methods)

    keys = sub.add_parser("keygen", help="write an ed25519 key pair for signed requests")
    keys.add_argument("path", metavar="PATH", help="private key file to create (public key: PATH.pub)")
    keys.set_defaults(func=cmd_keygen)

    xtest = sub.add_parser("xtest", help="conformance runner: check a daemon against a profile",
                           description="Exit status: 0 pass, 1 failures, 2 usage, 3 daemon unreachable, "
                                       "4 profile invalid, 130 interrupted.")
    target = xtest.add_mutually_exclusive_group(required=True)
    target.add_argument("--socket", metavar="P", help="the socket of a live daemon to check")
    target.add_argument("--spawn", action="store_true",
                        help="spawn a daemon in a network namespace and on loop disks the runner makes (root)")
    xtest.add_argument("--profile", required=True, metavar="NAME|FILE",
                       help="a shipped profile (host, stock-distro-vm) or a profile TOML file")
    xtest.add_argument("--report", default="xtest-report.json", metavar="F",
                       help="where to write the JSON report (default ./xtest-report.json)")
    xtest.add_argument("--timeout-default", type=float, default=60.0, metavar="S",
                       help="seconds each call may take unless its scenario says otherwise (default 60)")
    output = xtest.add_mutually_exclusive_group()
    output.add_argument("--quiet", action="store_true", help="print only the RESULT line")
    output.add_argument("--json-stdout", action="store_true", help="print the report JSON instead of the table")
    xtest.set_defaults(func=cmd_xtest)
    return top


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
