"""PPO's stopping rules as pure functions of the training history (no simulator)."""

from __future__ import annotations

import pytest

from dexforge.policies.overlap import OVERLAP_ENV, overlap_setting
from dexforge.policies.ppo import no_learning


def rows(*pairs: tuple[float | None, float]) -> list[dict]:
    """History rows of (window success rate, step success share)."""
    return [{"success_rate": rate, "step_success": steps} for rate, steps in pairs]


def test_no_learning_needs_no_success_at_any_step_by_the_share():
    dead = rows((None, 0.0), (0.0, 0.0), (0.0, 0.0))
    assert no_learning(dead, 300_000, 600_000, 0.5)
    assert not no_learning(dead, 299_999, 600_000, 0.5)  # before the share
    assert not no_learning(dead, 600_000, 600_000, None)  # the rule is off


def test_success_at_some_steps_is_learning_though_no_episode_ends_in_it():
    # the bottle's grasp, seed 0, a retry: no episode ended in success by half its budget, while success
    # held at 6% of its steps (lifted, not yet held to the end)
    rising = rows((0.0, 0.0), (0.0, 0.008), (0.0, 0.063))
    assert not no_learning(rising, 300_000, 600_000, 0.5)


def test_one_window_with_a_success_is_learning():
    assert not no_learning(rows((0.0, 0.0), (0.02, 0.0), (0.0, 0.0)), 300_000, 600_000, 0.5)


def test_rows_from_before_step_success_was_recorded_count_as_none():
    assert no_learning([{"success_rate": 0.0}, {"success_rate": None}], 300_000, 600_000, 0.5)
    assert not no_learning([{"success_rate": 0.5}], 300_000, 600_000, 0.5)


@pytest.mark.parametrize(
    ("raw", "want"), [(None, True), ("", True), ("0", False), ("off", False), ("1", True), ("ON", True)]
)
def test_the_overlap_setting_reads_the_environment(monkeypatch, raw, want):
    if raw is None:
        monkeypatch.delenv(OVERLAP_ENV, raising=False)
    else:
        monkeypatch.setenv(OVERLAP_ENV, raw)
    assert overlap_setting() is want


def test_an_overlap_setting_that_is_not_a_yes_or_no_is_an_error(monkeypatch):
    monkeypatch.setenv(OVERLAP_ENV, "sometimes")
    with pytest.raises(ValueError, match="DEXFORGE_PPO_OVERLAP must be 1 or 0, got 'sometimes'"):
        overlap_setting()
