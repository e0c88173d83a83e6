"""``upstream.breaker.Breaker`` in process: open, half-open probe, close; error rate; cooldown; retry budget."""

from __future__ import annotations

from gateway.upstream.breaker import CLOSED, HALF_OPEN, OPEN, Breaker, BreakerConfig, RetryBudgetConfig
from tests.support.wait import wait_until


def test_consecutive_failures_open_then_one_probe_closes():
    b = Breaker("bu-probe", BreakerConfig(consecutive_failures=3, open_for=0.05))
    for _ in range(2):
        b.failure()
    assert b.state == CLOSED and b.allow()
    b.failure()
    assert b.state == OPEN and b.is_open() and not b.allow()
    wait_until(b.allow, timeout=2, what="the open time to pass")  # the probe
    assert b.state == HALF_OPEN and not b.allow()  # one probe at a time
    b.success()
    assert b.state == CLOSED and b.failures == 0 and b.allow()


def test_a_failed_probe_reopens():
    b = Breaker("bu-reopen", BreakerConfig(consecutive_failures=1, open_for=0.05))
    b.failure()
    wait_until(b.allow, timeout=2, what="the probe")
    b.failure()
    assert b.state == OPEN and not b.allow()


def test_error_rate_over_the_window_opens():
    b = Breaker("bu-rate", BreakerConfig(consecutive_failures=100, error_rate=0.5, min_calls=4, window=60))
    for ok in (True, False, True):
        b.success() if ok else b.failure()
    assert b.state == CLOSED  # 3 calls: under min_calls
    b.failure()
    assert b.state == OPEN  # 2 of 4 failed


def test_cooldown_skips_the_upstream_without_counting_a_failure():
    b = Breaker("bu-cool", BreakerConfig(consecutive_failures=1))
    b.cool_down(30)
    assert b.is_open() and b.failures == 0
    b.cool_down(0)
    assert b.is_open()


def test_retry_budget_caps_retries_at_a_share_of_first_attempts():
    b = Breaker("bu-budget", BreakerConfig(), RetryBudgetConfig(ratio=0.5, min_retries=1, window=60))
    for _ in range(4):
        b.note_request()
    allowed = 0
    while b.allow_retry() and allowed < 10:
        allowed += 1
    assert allowed == 2  # max(min_retries 1, 0.5 x 4 first attempts)
