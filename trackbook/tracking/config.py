"""Experiment configs: YAML files with dotted command-line overrides, validated by OmegaConf.

A config has four sections::

    experiment:            # where and under which name runs are logged
      name: ppo-cartpole
      tracking_uri: null   # null: $MLFLOW_TRACKING_URI, else sqlite:///mlflow.db
      tags: {team: rl}
    model:                 # the stable-baselines3 algorithm and its hyper-parameters
      algorithm: PPO
      policy: MlpPolicy
      params: {learning_rate: 0.0003, n_steps: 256, gamma: 0.99}
    training:              # what TrackingCallback and learn() are given
      env_id: CartPole-v1
      total_timesteps: 50000
      eval_freq: 2000
      n_eval_episodes: 5
      save_freq: 10000
      seed: 0
    hpo:                   # a study: Optuna's search space per parameter
      n_trials: 20
      direction: maximize
      metric: eval/mean_reward
      param_space: {learning_rate: [0.0001, 0.001, 0.01]}

Example:
    >>> cfg = load_config("configs/ppo.yaml", ["training.total_timesteps=5000"])  # doctest: +SKIP
    >>> cfg.model.params.learning_rate                                            # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trackbook.errors import ConfigError


@dataclass
class ExperimentSection:
    name: str = "default"
    tracking_uri: str | None = None
    run_name: str | None = None
    tags: dict[str, str] = field(default_factory=dict)


@dataclass
class ModelSection:
    algorithm: str = "PPO"
    policy: str = "MlpPolicy"
    params: dict[str, Any] = field(default_factory=dict)


@dataclass
class TrainingSection:
    env_id: str = "CartPole-v1"
    total_timesteps: int = 10_000
    eval_freq: int = 0
    n_eval_episodes: int = 5
    save_freq: int = 0
    seed: int | None = None
    n_envs: int = 1


@dataclass
class HPOSection:
    n_trials: int = 10
    direction: str = "maximize"
    metric: str = "eval/mean_reward"
    sampler: str = "TPESampler"
    param_space: dict[str, Any] = field(default_factory=dict)


@dataclass
class ExperimentConfig:
    experiment: ExperimentSection = field(default_factory=ExperimentSection)
    model: ModelSection = field(default_factory=ModelSection)
    training: TrainingSection = field(default_factory=TrainingSection)
    hpo: HPOSection = field(default_factory=HPOSection)


_ALGORITHMS = ("A2C", "DDPG", "DQN", "PPO", "SAC", "TD3")
_DIRECTIONS = ("maximize", "minimize")


def load_config(
    source: str | Path | Mapping[str, Any] | None = None,
    overrides: Iterable[str] = (),
):
    """Read a YAML config (or a mapping), apply dotted overrides, validate, return it.

    Args:
        source: a YAML file, a mapping, or None for the defaults.
        overrides: ``"section.key=value"`` strings, as given on a command line
            (``training.learning_rate=0.005``); values are parsed as YAML.

    Returns:
        An OmegaConf ``DictConfig`` typed by :class:`ExperimentConfig`, read-only.

    Raises:
        ConfigError: a file is missing or not YAML, a key is unknown, a value has the
            wrong type, or a value is out of range; the message names the key.
    """
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    schema = OmegaConf.structured(ExperimentConfig)
    origin = "defaults"
    try:
        if source is None:
            loaded = OmegaConf.create({})
        elif isinstance(source, Mapping):
            loaded, origin = OmegaConf.create(dict(source)), "the mapping given"
        else:
            path = Path(source)
            if not path.is_file():
                raise ConfigError(f"Config file {path} does not exist. Pass the path of a YAML experiment config.")
            loaded, origin = OmegaConf.load(path), str(path)
        cfg = OmegaConf.merge(schema, loaded)
    except OmegaConfBaseException as exc:
        raise ConfigError(_explain(exc, origin)) from None
    except Exception as exc:  # noqa: BLE001 - YAML parse errors come in several types
        if isinstance(exc, ConfigError):
            raise
        raise ConfigError(f"Could not read the config {origin}: {exc}") from None
    overrides = list(overrides)
    for item in overrides:
        if "=" not in item or item.startswith("="):
            raise ConfigError(f"Override {item!r} is not of the form section.key=value (e.g. training.seed=3).")
    try:
        cfg = OmegaConf.merge(cfg, OmegaConf.from_dotlist(overrides))
    except OmegaConfBaseException as exc:
        raise ConfigError(_explain(exc, "the command-line overrides")) from None
    _check_values(cfg)
    OmegaConf.set_readonly(cfg, True)
    return cfg


def config_to_params(cfg: Any) -> dict[str, str]:
    """The config flattened to ``section.key`` -> string, as run params are logged.

    Example:
        >>> config_to_params({"model": {"learning_rate": 0.0003}, "symbol": "EUR/USD"})
        {'model.learning_rate': '0.0003', 'symbol': 'EUR/USD'}

    Args:
        cfg: an OmegaConf config (from :func:`load_config`), a mapping (nested ones
            flatten too) or a dataclass instance.

    Raises:
        TypeError: ``cfg`` is none of those.
    """
    flat: dict[str, str] = {}

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, Mapping):
            for k, v in value.items():
                walk(f"{prefix}.{k}" if prefix else str(k), v)
        else:
            flat[prefix] = "" if value is None else str(value)

    walk("", _container(cfg))
    return flat


def config_to_yaml(cfg: Any) -> str:
    """The config as YAML, as ``config.yaml`` is logged (same inputs as :func:`config_to_params`)."""
    from omegaconf import OmegaConf

    if OmegaConf.is_config(cfg):
        return OmegaConf.to_yaml(cfg, resolve=True)
    import yaml

    return yaml.safe_dump(_plain(_container(cfg)), sort_keys=False, allow_unicode=True)


def _container(cfg: Any) -> Mapping[str, Any]:
    from dataclasses import asdict, is_dataclass

    from omegaconf import OmegaConf

    if OmegaConf.is_config(cfg):
        return OmegaConf.to_container(cfg, resolve=True)
    if is_dataclass(cfg) and not isinstance(cfg, type):
        return asdict(cfg)
    if isinstance(cfg, Mapping):
        return cfg
    raise TypeError(
        f"config is a {type(cfg).__name__}; pass a mapping, a dataclass instance or an OmegaConf config "
        f"(trackbook.tracking.load_config reads one from YAML)."
    )


def _plain(value: Any) -> Any:
    """``value`` with every mapping a dict, every sequence a list, every unknown object its str()."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_plain(v) for v in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


def _check_values(cfg) -> None:
    problems = []
    if cfg.model.algorithm not in _ALGORITHMS:
        problems.append(f"model.algorithm={cfg.model.algorithm!r} is not one of {', '.join(_ALGORITHMS)}")
    if cfg.hpo.direction not in _DIRECTIONS:
        problems.append(f"hpo.direction={cfg.hpo.direction!r} must be 'maximize' or 'minimize'")
    for key in ("total_timesteps", "n_eval_episodes", "n_envs"):
        if cfg.training[key] < 1:
            problems.append(f"training.{key}={cfg.training[key]} must be >= 1")
    for key in ("eval_freq", "save_freq"):
        if cfg.training[key] < 0:
            problems.append(f"training.{key}={cfg.training[key]} must be >= 0 (0 turns it off)")
    if cfg.hpo.n_trials < 1:
        problems.append(f"hpo.n_trials={cfg.hpo.n_trials} must be >= 1")
    if problems:
        raise ConfigError("Invalid config: " + "; ".join(problems) + ".")


def _explain(exc: Exception, origin: str) -> str:
    key = getattr(exc, "full_key", None) or ""
    text = str(exc).splitlines()[0]
    if "Key '" in text and "not in" in text:
        section = key.rsplit(".", 1)[0] if "." in key else ""
        known = _known_keys(section)
        return (
            f"Unknown config key {key!r} in {origin}. "
            f"Known keys{' of ' + section if section else ''}: {', '.join(known)}. Check the spelling."
        )
    return f"Invalid value for config key {key!r} in {origin}: {text}."


def _known_keys(section: str) -> list[str]:
    from dataclasses import fields, is_dataclass
    from typing import get_type_hints

    target: Any = ExperimentConfig
    for part in filter(None, section.split(".")):
        hint = get_type_hints(target).get(part)
        if hint is None or not is_dataclass(hint):
            return []
        target = hint
    return [f.name for f in fields(target)]
