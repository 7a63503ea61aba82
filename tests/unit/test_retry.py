from __future__ import annotations

import random

import pytest

from ecosign_orchestrator.core import errors
from ecosign_orchestrator.core.job import RetryOverride
from ecosign_orchestrator.core.retry import RetryPolicy


def test_delay_is_full_jitter_under_the_exponential_ceiling() -> None:
    policy = RetryPolicy(max_attempts=10, base_seconds=2, cap_seconds=60)
    rng = random.Random(7)
    assert [policy.ceiling(a) for a in range(1, 8)] == [2, 4, 8, 16, 32, 60, 60]
    for attempt in range(1, 8):
        samples = [policy.delay(attempt, rng=rng) for _ in range(200)]
        assert all(0 <= s <= policy.ceiling(attempt) for s in samples)
        assert max(samples) > policy.ceiling(attempt) * 0.8  # really spread, not constant


def test_seeded_random_source_makes_delays_deterministic() -> None:
    policy = RetryPolicy(base_seconds=1, cap_seconds=30)
    first = [policy.delay(a, rng=random.Random(42)) for a in range(1, 6)]
    second = [policy.delay(a, rng=random.Random(42)) for a in range(1, 6)]
    assert first == second


def test_retry_after_raises_the_delay_but_never_lowers_it() -> None:
    policy = RetryPolicy(base_seconds=100, cap_seconds=100)
    rng = random.Random(3)
    assert policy.delay(1, retry_after=500, rng=rng) == 500
    low = policy.delay(1, retry_after=0.0001, rng=random.Random(3))
    assert low == policy.delay(1, rng=random.Random(3))


def test_huge_attempt_numbers_do_not_overflow() -> None:
    assert RetryPolicy(base_seconds=1, cap_seconds=5).ceiling(10_000) == 5


def test_overrides_replace_only_what_they_set() -> None:
    policy = RetryPolicy(max_attempts=5, base_seconds=2, cap_seconds=60)
    assert policy.with_override(RetryOverride(cap_seconds=10)) == RetryPolicy(
        max_attempts=5, base_seconds=2, cap_seconds=10
    )


@pytest.mark.parametrize("kwargs", [{"max_attempts": 0}, {"base_seconds": -1}, {"cap_seconds": -1}])
def test_invalid_policy_is_a_configuration_error(kwargs: dict[str, float]) -> None:
    with pytest.raises(errors.ConfigurationError):
        RetryPolicy(**kwargs)  # type: ignore[arg-type]
