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


def test_the_reward_metric_is_the_first_of_the_documented_order_present():
    names = ["train/loss", "reward", "metrics.rollout/ep_rew_mean", "eval/reward"]
    assert L.reward_metric(names) == "rollout/ep_rew_mean"  # earlier in REWARD_METRICS than eval/reward and reward
    assert L.reward_metric(reversed(names)) == "rollout/ep_rew_mean"  # the order of names does not matter
    assert L.reward_metric(["metrics.eval/mean_reward", "evaluation/mean_reward"]) == "eval/mean_reward"
    assert L.reward_metric(["episode_reward_mean", "train/loss"]) == "episode_reward_mean"
    assert L.reward_metric(["train/loss", "metrics.x"]) is None
    assert L.reward_metric([], default="score") == "score"
    assert L.reward_metric(["train/loss"], default="train/loss") == "train/loss"
    assert L.reward_metric(["rewardx", "xreward", "metrics.metrics.reward"]) is None  # whole names only
