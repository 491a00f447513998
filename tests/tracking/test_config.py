"""YAML experiment configs: overrides, validation, and how they are logged."""

from __future__ import annotations

from pathlib import Path

import pytest

from trackbook.errors import ConfigError
from trackbook.tracking.config import config_to_params, config_to_yaml, load_config

YAML = """
experiment:
  name: ppo-cartpole
  tags: {team: rl}
model:
  algorithm: PPO
  params: {learning_rate: 0.0003, n_steps: 256}
training:
  total_timesteps: 50000
  eval_freq: 2000
hpo:
  n_trials: 8
  param_space:
    learning_rate: [0.0001, 0.001, 0.01]
"""


@pytest.fixture()
def config_file(tmp_path: Path) -> Path:
    path = tmp_path / "ppo.yaml"
    path.write_text(YAML)
    return path


def test_yaml_with_dotted_overrides(config_file: Path):
    cfg = load_config(config_file, ["training.total_timesteps=5000", "model.params.learning_rate=0.005",
                                    "hpo.direction=minimize"])
    assert cfg.experiment.name == "ppo-cartpole"
    assert cfg.training.total_timesteps == 5000 and cfg.training.eval_freq == 2000
    assert cfg.model.params.learning_rate == 0.005 and cfg.model.params.n_steps == 256
    assert cfg.hpo.direction == "minimize" and list(cfg.hpo.param_space.learning_rate) == [0.0001, 0.001, 0.01]
    assert cfg.training.n_eval_episodes == 5  # a default from the schema


def test_logged_forms(config_file: Path):
    cfg = load_config(config_file)
    params = config_to_params(cfg)
    assert params["model.params.learning_rate"] == "0.0003"
    assert params["experiment.tags.team"] == "rl"
    assert params["experiment.tracking_uri"] == ""
    assert "total_timesteps: 50000" in config_to_yaml(cfg)


def test_config_is_read_only(config_file: Path):
    cfg = load_config(config_file)
    with pytest.raises(Exception, match="read-only"):
        cfg.training.total_timesteps = 1


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["training.learning_rat=0.1"], r"Unknown config key 'training.learning_rat'.*total_timesteps"),
        (["trainig.seed=1"], r"Unknown config key 'trainig"),
        (["training.total_timesteps=many"], r"config key 'training.total_timesteps'"),
        (["training.total_timesteps=0"], r"training.total_timesteps=0 must be >= 1"),
        (["model.algorithm=PPO2"], r"model.algorithm='PPO2' is not one of"),
        (["hpo.direction=up"], r"hpo.direction='up' must be 'maximize' or 'minimize'"),
        (["training.seed"], r"not of the form section.key=value"),
    ],
)
def test_bad_values_name_the_key(config_file: Path, overrides, message):
    with pytest.raises(ConfigError, match=message):
        load_config(config_file, overrides)


def test_bad_files(tmp_path: Path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "missing.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("training: [unclosed\n")
    with pytest.raises(ConfigError, match="broken.yaml"):
        load_config(broken)
    typo = tmp_path / "typo.yaml"
    typo.write_text("training:\n  totl_timesteps: 5\n")
    with pytest.raises(ConfigError, match=r"Unknown config key 'training.totl_timesteps' in .*typo.yaml"):
        load_config(typo)
