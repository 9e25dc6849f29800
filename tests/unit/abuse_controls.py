"""What the abuse-control tests share: the controls switched off, and a settable clock.

``LIMITS_OFF`` switches off every limit that counts requests or prompts, for tests that send many
requests for one user and client about something else (fuzzing, timing, malformed input);
``ALL_OFF`` also switches off the report block and the user_code lockout, for the abuse tests,
each of which switches on the control it is about.
"""

from __future__ import annotations

import time
from unittest import mock

import pytest


LIMITS_OFF = {
    "CLIENT_RATE_LIMIT": None,
    "USER_RATE_LIMIT": None,
    "MAX_PENDING_PER_USER": None,
    "UNAPPROVED_PROMPT_LIMIT": None,
    "UNAPPROVED_PROMPT_CEILING": None,
}
ALL_OFF = {
    **LIMITS_OFF,
    "MAX_PENDING_PER_CLIENT_USER": None,
    "ABUSE_REPORT_LIMIT": None,
    "USER_CODE_MAX_FAILURES": None,
}


class Clock:
    """A settable stand-in for ``time.time`` (starts at the real time: requests expire by it)."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock():
    """The clock of ``bc_authorize.abuse``, moved by ``clock.advance(s)``."""
    fake = Clock()
    with mock.patch("django_ciba.bc_authorize.abuse._clock", fake):
        yield fake
