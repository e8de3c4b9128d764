"""Run the real daemon (osd.server.serve) with the FakeBackend: ``python fake_daemon.py [osd serve flags]``."""

from __future__ import annotations

import asyncio
import logging
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from osd import cli, config as configuration  # noqa: E402
from osd.server import serve  # noqa: E402
from support.fake import FakeBackend  # noqa: E402


def main() -> int:
    args = cli.parser().parse_args(["serve", *sys.argv[1:]])
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    config = configuration.load(
        args.config,
        overrides={"server": {"socket": args.socket, "state_dir": args.state_dir, "acl": args.acl}},
        renames=dict(r.split("=", 1) for r in args.rename),
    )
    return asyncio.run(serve(config, FakeBackend()))


if __name__ == "__main__":
    sys.exit(main())
