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
        (["training.total_timestep=1"], r"Unknown config key 'training.total_timestep'.*did you mean "
                                        r"training.total_timesteps"),
        (["trainig.seed=1"], r"Unknown config key 'trainig'.*did you mean training"),
        (["training.total_timesteps=many"], r"config key 'training.total_timesteps'"),
        (["training.total_timesteps=0"], r"training.total_timesteps=0 must be >= 1"),
        (["model.algorithm=PPO2"], r"model.algorithm='PPO2' is not one of"),
        (["hpo.direction=up"], r"hpo.direction='up' must be 'maximize' or 'minimize'"),
        (["training.seed"], r"not of the form section.key=value"),
        (["--training.seed"], r"has no value"),
        (["monitoring.prometheus_port=70000"], r"monitoring.prometheus_port=70000 must be a port"),
        (["hpo.objective=train_objective"], r"must name a function as module:function"),
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


# The trading stack's own example config, written from its documented sections and keys.
STACK_YAML = """
experiment:
  name: "HPO_Study_NN_Model"
  tags:
    project: "TradingBot"
    model_type: "NeuralNetwork"
    task: "HyperparameterOptimization"
model:
  input_dim: 10
  hidden_layers: [64, 32]
  output_dim: 1
  activation: "relu"
training:
  epochs: 50
  batch_size: 32
  learning_rate: 0.001
  optimizer: "Adam"
  algorithm: PPO
hpo:
  param_space:
    learning_rate: [0.0001, 0.001, 0.01]
    batch_size: [16, 32, 64]
  num_trials: 10
monitoring:
  prometheus_port: 8011
"""


def test_the_trading_stacks_yaml_loads_whole(tmp_path: Path):
    path = tmp_path / "hpo_example.yaml"
    path.write_text(STACK_YAML)
    cfg = load_config(path, ["--model.learning_rate", "0.005", "--training.epochs=3"])
    # kept as given
    assert cfg.model.input_dim == 10 and list(cfg.model.hidden_layers) == [64, 32]
    assert cfg.training.epochs == 3 and cfg.training.optimizer == "Adam" and cfg.training.algorithm == "PPO"
    assert cfg.model.learning_rate == 0.005
    # read by trackbook
    assert cfg.hpo.n_trials == 10 and cfg.hpo.num_trials == 10
    assert cfg.monitoring.prometheus_port == 8011 and cfg.monitoring.prometheus_host == "127.0.0.1"
    assert cfg.experiment.name == "HPO_Study_NN_Model" and cfg.experiment.tags.project == "TradingBot"
    # and all of it is logged
    params = config_to_params(cfg)
    assert params["model.hidden_layers"] == "[64, 32]"
    assert params["training.epochs"] == "3" and params["hpo.param_space.batch_size"] == "[16, 32, 64]"
    assert "input_dim: 10" in config_to_yaml(cfg)


@pytest.mark.parametrize(("overrides", "expected"), [
    ([], 10), (["hpo.n_trials=3"], 3), (["--hpo.num_trials", "4"], 4),
])
def test_num_trials_is_n_trials(tmp_path: Path, overrides, expected):
    path = tmp_path / "hpo_example.yaml"
    path.write_text(STACK_YAML)
    cfg = load_config(path, overrides)
    assert cfg.hpo.n_trials == expected == cfg.hpo.num_trials


def test_a_plain_dict_config_keeps_its_keys():
    cfg = load_config({"training": {"epochs": 2, "total_timesteps": 64}, "data": {"symbol": "EUR/USD"}})
    assert cfg.training.total_timesteps == 64 and cfg.training.epochs == 2 and cfg.data.symbol == "EUR/USD"
    with pytest.raises(ConfigError, match="training.total_timesteps"):
        load_config({"training": {"total_timesteps": "lots"}})
