"""Answer times at ``bc-authorize`` that do not tell known users from unknown ones.

A hint naming a known user costs the abuse checks, the decision policies and the inserts; a hint
naming nobody costs one lookup. Left alone, a client could tell the two apart by the time of the
answer (a few milliseconds). Each process therefore keeps the durations of its last successful
requests, measured from the user lookup to the commit, and holds an ``unknown_user_id`` answer
until a duration drawn from those samples has passed: both kinds of answer then take the same
time on average, with the same spread. Waits that end late (a busy machine wakes a sleeping thread
late) are corrected by shortening later waits by the average lateness.

Switched off with ``CIBA["EQUALIZE_UNKNOWN_USER_TIMING"] = False``; the wait never exceeds
``CIBA["UNKNOWN_USER_MAX_DELAY"]`` seconds. Until a process has served a successful request it
waits :data:`COLD_START_DELAY`.
"""

from __future__ import annotations

import random
import time
from collections import deque
from collections.abc import Callable

from django_ciba.core.conf import ciba_settings


#: Successful durations remembered per process (the most recent ones).
SAMPLE_SIZE = 256
#: Seconds an unknown user's answer waits before the process has any sample.
COLD_START_DELAY = 0.005

#: Weight of the newest observation in the running mean of oversleeping.
BIAS_WEIGHT = 0.05

_samples: deque[float] = deque(maxlen=SAMPLE_SIZE)
_draw = random.Random()
# How much later than asked a wait ends, on average (wake-up latency on a busy machine): each wait
# is shortened by it, so that the answers end on time on average.
_bias = 0.0
# Looked up at call time, so that tests can replace them.
_clock: Callable[[], float] = time.perf_counter
_sleep: Callable[[float], None] = time.sleep


def start() -> float:
    """The moment the user-dependent part of a request begins (a ``perf_counter`` value)."""
    return _clock()


def record_known(started: float) -> None:
    """A request for a known user succeeded: remember how long its user-dependent part took."""
    if ciba_settings.EQUALIZE_UNKNOWN_USER_TIMING:
        _samples.append(max(0.0, _clock() - started))


def target() -> float:
    """Seconds an unknown user's answer should take from :func:`start`: one remembered sample."""
    # deque only grows up to SAMPLE_SIZE, so a length read before indexing stays valid.
    count = len(_samples)
    delay = _samples[_draw.randrange(count)] if count else COLD_START_DELAY
    return min(delay, float(ciba_settings.UNKNOWN_USER_MAX_DELAY))


def pad_unknown(started: float) -> float:
    """Wait until an unknown user's answer has taken as long as a known user's; returns the wait."""
    global _bias
    if not ciba_settings.EQUALIZE_UNKNOWN_USER_TIMING:
        return 0.0
    goal = target()
    wait = goal - (_clock() - started) - _bias
    if wait <= 0:
        return 0.0
    _sleep(wait)
    late = (_clock() - started) - goal
    _bias = min(max(0.0, _bias + BIAS_WEIGHT * late), goal)
    return wait


def reset() -> None:
    """Forget every sample (tests, or after changing what a request does)."""
    global _bias
    _samples.clear()
    _bias = 0.0


def samples() -> list[float]:
    """A copy of the remembered durations, oldest first."""
    return list(_samples)
