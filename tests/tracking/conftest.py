from __future__ import annotations

import gymnasium as gym
import pytest
from stable_baselines3.common.monitor import Monitor


@pytest.fixture()
def cartpole():
    """A fresh Monitor-wrapped CartPole-v1 each call."""

    def make():
        return Monitor(gym.make("CartPole-v1"))

    return make
