"""Shared fixtures; tests/ is on sys.path so ``support`` is importable."""

from __future__ import annotations

import os

import pytest

ROOT = os.geteuid() == 0


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    skip_root = pytest.mark.skip(reason="needs root (network namespaces, loop devices, mounts, setpriv)")
    for item in items:
        if "root" in item.keywords and not ROOT:
            item.add_marker(skip_root)
