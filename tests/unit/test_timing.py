"""SEC-08: an ``unknown_user_id`` answer waits as long as a known user's request took.

The clock and the sleep of ``django_ciba.bc_authorize.timing`` are replaced (a unit test may stub), so these
tests check the mechanism without timing anything; ``benchmarks/login_hint_timing.py`` measures
the result over HTTP.
"""

from __future__ import annotations

import pytest

from django_ciba.bc_authorize import abuse, timing
from django_ciba.testing import bc_authorize, create_ciba_client
from tests.unit.abuse_controls import LIMITS_OFF
from tests.unit.auth_requests import ask


class FakeTime:
    """A clock that advances ``step`` seconds per reading; sleeps are recorded and advance it."""

    def __init__(self, step: float = 0.001) -> None:
        self.now = 100.0
        self.step = step
        self.sleeps: list[float] = []

    def clock(self) -> float:
        self.now += self.step
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.fixture
def fake_time(monkeypatch):
    fake = FakeTime()
    monkeypatch.setattr(timing, "_clock", fake.clock)
    monkeypatch.setattr(timing, "_sleep", fake.sleep)
    return fake


@pytest.fixture
def teller(db, ciba_settings):
    ciba_settings.set(
        **LIMITS_OFF,
    )
    return create_ciba_client("Timing teller")


def test_a_known_users_request_records_its_duration(client, user, teller, fake_time):
    assert timing.samples() == []
    response = ask(client, *teller, login_hint="alice")
    assert response.status_code == 200
    samples = timing.samples()
    assert len(samples) == 1
    # From the user lookup to the commit: several clock readings of the fake clock, never zero.
    assert samples[0] > 0


def test_an_unknown_user_waits_for_a_remembered_duration(client, user, teller, fake_time):
    timing._samples.extend([0.040])  # one known request took 40 ms
    response = ask(client, *teller, login_hint="nobody")
    assert (response.status_code, response.json()["error"]) == (400, "unknown_user_id")
    assert len(fake_time.sleeps) == 1
    # The wait tops the 40 ms up: 40 ms minus the (fake) time already spent since the lookup began.
    assert 0.030 < fake_time.sleeps[0] < 0.040
    assert timing.samples() == [0.040]  # failures are not samples


def test_the_wait_is_drawn_from_the_samples_so_the_spread_matches(monkeypatch, ciba_settings):
    timing._samples.extend([0.010, 0.030])
    monkeypatch.setattr(timing, "_draw", __import__("random").Random(7))
    drawn = {timing.target() for _ in range(50)}
    assert drawn == {0.010, 0.030}


def test_a_locked_user_is_held_like_an_unknown_one(client, user, teller, fake_time, ciba_settings):
    # A user locked after wrong user codes is answered exactly as an unknown user, time included.
    ciba_settings.set(USER_CODE_SUPPORTED=True, USER_CODE_MAX_FAILURES=1, USER_CODE_LOCKOUT=900)
    assert abuse.record_user_code_failure(user)
    timing._samples.extend([0.020])
    response = ask(client, *teller, login_hint="alice")
    assert (response.status_code, response.json()["error"]) == (400, "unknown_user_id")
    assert len(fake_time.sleeps) == 1 and 0.010 < fake_time.sleeps[0] < 0.020


def test_the_wait_is_capped(client, user, teller, fake_time, ciba_settings):
    ciba_settings.set(UNKNOWN_USER_MAX_DELAY=0.1)
    timing._samples.extend([5.0])
    ask(client, *teller, login_hint="nobody")
    assert len(fake_time.sleeps) == 1 and fake_time.sleeps[0] <= 0.1


def test_before_any_known_request_the_cold_start_delay_applies(client, teller, fake_time):
    ask(client, *teller, login_hint="nobody")
    assert len(fake_time.sleeps) == 1 and 0 < fake_time.sleeps[0] <= timing.COLD_START_DELAY


def test_no_wait_when_the_lookup_already_took_longer(client, teller, fake_time):
    timing._samples.extend([0.0001])  # shorter than one fake clock step
    ask(client, *teller, login_hint="nobody")
    assert fake_time.sleeps == []


def test_switched_off_nothing_is_recorded_or_waited(client, user, teller, fake_time, ciba_settings):
    ciba_settings.set(EQUALIZE_UNKNOWN_USER_TIMING=False)
    assert ask(client, *teller, login_hint="alice").status_code == 200
    timing._samples.extend([0.040])
    assert ask(client, *teller, login_hint="nobody").status_code == 400
    assert timing.samples() == [0.040]
    assert fake_time.sleeps == []


def test_other_refusals_are_not_held(client, user, teller, fake_time):
    # Only the user-dependent answer is held: a malformed request is refused at once.
    timing._samples.extend([0.040])
    application, secret = teller
    response = bc_authorize(client, application, secret, scope="openid")  # no hint at all
    assert response.json()["error"] == "invalid_request"
    assert fake_time.sleeps == []


def test_waits_that_end_late_shorten_the_next_ones(monkeypatch, ciba_settings):
    # A busy machine wakes every sleeper 2 ms late: the running correction learns it, so that the
    # answers end on time on average instead of 2 ms after a known user's.
    fake = FakeTime(step=0.0)
    monkeypatch.setattr(timing, "_clock", fake.clock)
    monkeypatch.setattr(timing, "_sleep", lambda seconds: fake.sleep(seconds + 0.002))
    timing._samples.extend([0.020])
    ends = []
    for _ in range(200):
        started = timing.start()
        timing.pad_unknown(started)
        ends.append(fake.now - started)
    assert ends[0] == pytest.approx(0.022)
    assert ends[-1] == pytest.approx(0.020, abs=0.0002)
