"""Experiment configs: YAML files with dotted command-line overrides, validated by OmegaConf.

trackbook reads five sections (below). It validates the keys it uses and keeps every
other key as written (the trading stack's ``model.input_dim``, ``training.epochs``,
``model.hidden_layers``, a section of your own, ...), so the whole file is logged with
the run. An unknown key that looks like a misspelling of a known one
(``training.total_timestep``) is an error that names the known key. ``hpo.num_trials``
(the trading stack's name) is read as ``hpo.n_trials``.

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
      n_trials: 20         # or num_trials
      direction: maximize
      metric: eval/mean_reward   # what the objective measures (default: objective)
      sampler: TPESampler
      objective: mypkg.train:objective   # what `trackbook hpo CONFIG.yaml` runs
      param_space: {learning_rate: [0.0001, 0.001, 0.01]}
    monitoring:            # the Prometheus exporter
      prometheus_port: 8011
      prometheus_host: 127.0.0.1

Overrides are written ``section.key=value`` or, as the trading stack's scripts take
them, ``--section.key value`` (and ``--section.key=value``).

Example:
    >>> cfg = load_config("configs/ppo.yaml", ["training.total_timesteps=5000"])  # doctest: +SKIP
    >>> cfg = load_config("hpo_example.yaml", ["--model.learning_rate", "0.005"])  # doctest: +SKIP
    >>> cfg.model.params.learning_rate                                            # doctest: +SKIP
"""

from __future__ import annotations

import difflib
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trackbook.errors import ConfigError

_log = logging.getLogger("trackbook.tracking")


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
    #: what the objective measures (recorded on the parent run); null: "objective"
    metric: str | None = None
    sampler: str = "TPESampler"
    seed: int | None = None
    #: ``module:function`` run by ``trackbook hpo CONFIG.yaml``: ``function(trial) -> float``.
    objective: str | None = None
    study_name: str | None = None
    #: Optuna RDB storage shared by parallel workers (in memory if null).
    storage: str | None = None
    param_space: dict[str, Any] = field(default_factory=dict)


@dataclass
class MonitoringSection:
    prometheus_port: int | None = None
    #: Address the exporter binds; another than 127.0.0.1 (0.0.0.0 for a Prometheus in Docker) must be asked for.
    prometheus_host: str = "127.0.0.1"


@dataclass
class ExperimentConfig:
    experiment: ExperimentSection = field(default_factory=ExperimentSection)
    model: ModelSection = field(default_factory=ModelSection)
    training: TrainingSection = field(default_factory=TrainingSection)
    hpo: HPOSection = field(default_factory=HPOSection)
    monitoring: MonitoringSection = field(default_factory=MonitoringSection)


#: The trading stack's names for trackbook's keys (read by :func:`_aliases`).
_ALIASES = ("num_trials",)
_ALGORITHMS = ("A2C", "DDPG", "DQN", "PPO", "SAC", "TD3")
_DIRECTIONS = ("maximize", "minimize")


def load_config(
    source: str | Path | Mapping[str, Any] | None = None,
    overrides: Iterable[str] = (),
):
    """Read a YAML config (or a mapping), apply dotted overrides, validate, return it.

    Args:
        source: a YAML file, a mapping (plain or OmegaConf), or None for the defaults.
        overrides: ``"section.key=value"`` strings, or the trading stack's
            ``"--section.key", "value"`` pairs, as given on a command line; values are
            parsed as YAML.

    Returns:
        An OmegaConf ``DictConfig``, read-only: the sections of :class:`ExperimentConfig`
        typed and validated, every other key kept as given.

    Raises:
        ConfigError: a file is missing or not YAML, a key misspells a known one, a value
            has the wrong type, or a value is out of range; the message names the key.
    """
    from omegaconf import DictConfig, OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    schema = OmegaConf.structured(ExperimentConfig)
    _open(schema)
    origin = "defaults"
    try:
        if source is None:
            loaded = OmegaConf.create({})
        elif isinstance(source, DictConfig):
            loaded, origin = source, "the mapping given"
        elif isinstance(source, Mapping):
            loaded, origin = OmegaConf.create(dict(source)), "the mapping given"
        else:
            path = Path(source)
            if not path.is_file():
                raise ConfigError(f"Config file {path} does not exist. Pass the path of a YAML experiment config.")
            loaded, origin = OmegaConf.load(path), str(path)
        if not isinstance(loaded, DictConfig):
            raise ConfigError(f"The config {origin} is not a mapping of sections (experiment, model, training, ...).")
        _check_spelling(loaded, origin)
        cfg = OmegaConf.merge(schema, loaded)
    except OmegaConfBaseException as exc:
        raise ConfigError(_explain(exc, origin)) from None
    except Exception as exc:  # noqa: BLE001 - YAML parse errors come in several types
        if isinstance(exc, ConfigError):
            raise
        raise ConfigError(f"Could not read the config {origin}: {exc}") from None
    dotlist = parse_overrides(overrides)
    try:
        given = OmegaConf.from_dotlist(dotlist)
        _check_spelling(given, "the command-line overrides")
        cfg = OmegaConf.merge(cfg, given)
    except OmegaConfBaseException as exc:
        raise ConfigError(_explain(exc, "the command-line overrides")) from None
    _aliases(cfg, given)
    _check_values(cfg)
    OmegaConf.set_readonly(cfg, True)
    extra = sorted(set(config_to_params(cfg)) - set(config_to_params(OmegaConf.structured(ExperimentConfig))))
    if extra:
        _log.info("trackbook: config keys kept as given (logged, not used by trackbook): %s", ", ".join(extra))
    return cfg


def parse_overrides(overrides: Iterable[str]) -> list[str]:
    """Command-line overrides as OmegaConf's dotlist: ``key=value`` stays, ``--key value``
    and ``--key=value`` become ``key=value``.

    Example:
        >>> parse_overrides(["--model.learning_rate", "0.005", "training.seed=3"])
        ['model.learning_rate=0.005', 'training.seed=3']

    Raises:
        ConfigError: an item that is neither form, or a ``--key`` with no value after it.
    """
    items, out, i = list(overrides), [], 0
    while i < len(items):
        item = str(items[i])
        if item.startswith("--"):
            key, sep, value = item[2:].partition("=")
            if not sep:
                if i + 1 >= len(items) or str(items[i + 1]).startswith("--"):
                    raise ConfigError(f"Override {item!r} has no value; write {item} VALUE or {item[2:]}=VALUE.")
                value, i = str(items[i + 1]), i + 1
            item = f"{key}={value}"
        if "=" not in item or item.startswith("="):
            raise ConfigError(
                f"Override {item!r} is not of the form section.key=value or --section.key value "
                f"(e.g. training.seed=3, --model.learning_rate 0.005).")
        out.append(item)
        i += 1
    return out


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
    port = cfg.monitoring.prometheus_port
    if port is not None and not 0 <= port <= 65535:
        problems.append(f"monitoring.prometheus_port={port} must be a port in 0..65535 (0: a free one)")
    if cfg.hpo.objective is not None and ":" not in cfg.hpo.objective:
        problems.append(f"hpo.objective={cfg.hpo.objective!r} must name a function as module:function")
    if problems:
        raise ConfigError("Invalid config: " + "; ".join(problems) + ".")


def _open(node) -> None:
    """Let every section keep keys trackbook does not use (typed keys stay typed)."""
    from omegaconf import DictConfig, OmegaConf

    OmegaConf.set_struct(node, False)
    for key in node:
        child = node._get_node(key)
        if isinstance(child, DictConfig):
            _open(child)


def _check_spelling(loaded, origin: str) -> None:
    """An unknown key that is nearly a known one (``trainig``, ``total_timestep``) is a typo."""
    from dataclasses import fields

    def walk(node, target, prefix: str) -> None:
        known = {f.name: f for f in fields(target)}
        for key in node:
            key = str(key)
            full = f"{prefix}{key}"
            if key in _ALIASES:
                continue
            if key in known:
                hint = _section_type(target, key)
                if hint is not None and hasattr(node[key], "keys"):
                    walk(node[key], hint, f"{full}.")
                continue
            close = difflib.get_close_matches(key, known, n=1, cutoff=0.85)
            if close:
                raise ConfigError(
                    f"Unknown config key {full!r} in {origin}: did you mean {prefix}{close[0]}? "
                    f"Known keys{' of ' + prefix.rstrip('.') if prefix else ''}: {', '.join(known)}. "
                    f"Other keys are kept as given; this one is too close to a known one to be meant.")

    walk(loaded, ExperimentConfig, "")


def _section_type(target: Any, key: str):
    from dataclasses import is_dataclass
    from typing import get_type_hints

    hint = get_type_hints(target).get(key)
    return hint if hint is not None and is_dataclass(hint) else None


def _aliases(cfg, given) -> None:
    """``hpo.num_trials`` (the trading stack's name) and ``hpo.n_trials`` are one setting;
    the one set on the command line wins, else ``num_trials`` from the file."""
    hpo = cfg.hpo
    if "num_trials" not in hpo:
        return
    from omegaconf import OmegaConf

    overridden = OmegaConf.select(given, "hpo.n_trials") is not None
    if overridden:
        hpo.num_trials = hpo.n_trials
    else:
        hpo.n_trials = int(hpo.num_trials)


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
