"""Fixtures for network system tests: a lab, a namespace from it, and the real daemon inside it.

A module may define its own ``ns`` or ``daemon`` fixture (with other arguments); these are
the common case.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from support.daemon import REAL_DAEMON, Daemon
from support.netlab import NetLab, Netns


@pytest.fixture
def lab() -> Iterator[NetLab]:
    with NetLab() as lab:
        yield lab


@pytest.fixture
def ns(lab: NetLab, request: pytest.FixtureRequest) -> Netns:
    """A fresh namespace, tagged with the test module's name (test_net_bridges -> bridges)."""
    return lab.netns(request.module.__name__.rsplit("_", 1)[-1])


@pytest.fixture
def daemon(ns: Netns) -> Iterator[Daemon]:
    """The real daemon inside ``ns``, the client outside."""
    with Daemon(REAL_DAEMON, netns=ns.name) as d:
        yield d
