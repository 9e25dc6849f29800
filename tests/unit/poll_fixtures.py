"""Fixtures shared by the token endpoint's tests: a controllable clock for the poll decisions, and
both paths of a poll (the hot-path cache on and off). Registered by ``tests/conftest.py``."""

from __future__ import annotations

from datetime import timedelta
from types import SimpleNamespace

import pytest
from django.utils import timezone

from django_ciba.clients import cache as client_cache


class Clock:
    """A controllable ``timezone.now`` for the modules that poll (validators)."""

    def __init__(self) -> None:
        self.current = timezone.now()

    def now(self):
        return self.current

    def advance(self, seconds: float) -> None:
        self.current += timedelta(seconds=seconds)


@pytest.fixture
def poll_clock(monkeypatch):
    clock = Clock()
    monkeypatch.setattr("django_ciba.validators.timezone", SimpleNamespace(now=clock.now))
    return clock


@pytest.fixture(params=[True, False], ids=["cache", "database"])
def hot(request, ciba_settings):
    """Both paths: the hot-path cache on, and off (the database path)."""
    ciba_settings.set(HOT_PATH_CACHE=request.param)
    client_cache.clear()
    yield request.param
    client_cache.clear()
