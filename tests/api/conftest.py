"""API tests: the real daemon process and socket, with the FakeBackend behind them."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from support.daemon import Daemon


@pytest.fixture
def daemon() -> Iterator[Daemon]:
    with Daemon() as d:
        yield d
