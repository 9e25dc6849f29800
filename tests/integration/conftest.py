"""Integration tests: a real PostgreSQL (``scripts/with-postgres``) and, for one test, Node.js.

Outside CI a missing service skips these tests with a hint; in CI (``CI=true``) it fails them,
so a CI run can never pass by skipping its integration suite.
"""

from __future__ import annotations

import os
import shutil

import pytest
from django.db import connections


HOW_TO_RUN = (
    "Run them with: scripts/run-integration (or scripts/with-postgres .venv/bin/pytest tests/integration)."
)


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() == "true"


def require(condition: bool, problem: str) -> None:
    """Fail in CI, skip elsewhere, when ``condition`` does not hold."""
    if condition:
        return
    if in_ci():
        pytest.fail(f"{problem} (CI=true: integration tests are never skipped in CI)", pytrace=False)
    pytest.skip(f"{problem}. {HOW_TO_RUN}")


@pytest.fixture(autouse=True)
def _require_postgresql() -> None:
    vendor = connections["default"].vendor
    require(
        vendor == "postgresql",
        f"The integration tests need PostgreSQL (DATABASE_URL=postgres://...), not {vendor}",
    )


@pytest.fixture(scope="session")
def node_tools() -> dict[str, str]:
    """Paths of ``node`` and ``npm``; skipped (failed in CI) when either is missing."""
    node, npm = shutil.which("node"), shutil.which("npm")
    require(bool(node and npm), "The independent-client check needs Node.js and npm on PATH")
    return {"node": node or "", "npm": npm or ""}
