"""The one rule for "better": goals given, else the metric's name."""

from __future__ import annotations

import pytest

from trackbook import layout as L


@pytest.mark.parametrize("metric, goal", [
    ("eval/mean_reward", "max"), ("train/loss", "min"), ("Value_Error", "min"), ("val/RMSE", "min"),
    ("max_drawdown", "min"), ("accuracy", "max"),
])
def test_goal_from_the_name(metric, goal):
    assert L.metric_goal(metric) == goal


def test_goals_given_win_and_bad_goals_raise():
    assert L.metric_goal("train/loss", {"train/loss": "max"}) == "max"
    assert L.metric_goal("reward", {"reward": "min", "other": "max"}) == "min"
    assert L.metric_goal("reward", {"other": "min"}) == "max"
    with pytest.raises(ValueError, match=r"goals\['reward'\]='up': use 'max' or 'min'."):
        L.metric_goal("reward", {"reward": "up"})
