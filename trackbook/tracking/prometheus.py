"""Live training metrics for Prometheus: the RL trading stack's ``rl_training_*`` family, served on /metrics.

Example:
    >>> cb = tb.TrackingCallback(store, experiment="ppo", prometheus_port=8011)   # doctest: +SKIP
    >>> model.learn(100_000, callback=cb)       # scrape http://127.0.0.1:8011/metrics meanwhile

    >>> from trackbook.tracking import prometheus as prom                       # the trading stack's helper functions
    >>> prom.start_metrics_server(8011)                                          # doctest: +SKIP
    >>> prom.record_training_start("PPO", run_id)                                # doctest: +SKIP

The families, their types and labels are those of the RL trading stack's exporter, so their
Prometheus queries and Grafana panels keep working. ``run_id`` labels only gauges, and
at most ``max_runs`` runs keep series (older runs' series are dropped): histograms and
counters are labelled by algorithm (and agent) only, so cardinality stays bounded.
Trading metrics a training logs feed the family's own gauges: ``sharpe_ratio``,
``max_drawdown``, ``win_rate`` and ``total_return``, bare or under ``portfolio/``,
``trading/`` or ``custom_metrics/`` (``portfolio/sharpe_ratio`` sets
``rl_training_sharpe_ratio``), labelled by the training's agent; ``data_load_time``
(seconds; also ``data/load_time``, ``time/data_load_time``) is observed by
``rl_training_data_load_time_seconds``. Values go in as logged (the family's help says
win rate in percent; log it so, or read the gauge as the fraction you logged).
Every other metric a training logs (``eval/mean_reward``, ``portfolio/value``, ...)
is exported as a gauge ``rl_training_<name>`` with the name sanitised to Prometheus'
rules; two names that sanitise alike raise :class:`MetricNameCollision`.

The server binds 127.0.0.1 unless told otherwise: ``start_metrics_server(8011,
host="0.0.0.0")`` lets a Prometheus in Docker scrape it (a callback with the same
``prometheus_port`` then serves through that server). It answers ``/metrics`` and ``/health``.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
import warnings
from collections import OrderedDict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from trackbook import columns as C
from trackbook.errors import MetricNameCollision, PortInUse

_log = logging.getLogger("trackbook.tracking")

DEFAULT_PORT = 8011
PREFIX = "rl_training_"
DURATION_BUCKETS = (60, 300, 600, 1800, 3600, 7200, 18000, 36000)
REWARD_BUCKETS = (-1000, -500, -100, 0, 100, 500, 1000, 5000, 10000)
LENGTH_BUCKETS = (10, 50, 100, 200, 500, 1000, 2000, 5000)
LOSS_BUCKETS = (0.001, 0.01, 0.1, 0.5, 1.0, 2.0, 5.0, 10.0)
ENTROPY_BUCKETS = (0.1, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0)
LOAD_BUCKETS = (0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
LOCALHOST = "127.0.0.1"
#: Logged names (after one of :data:`TRADING_PREFIXES`) that set the family's performance gauges.
TRADING_METRICS = ("sharpe_ratio", "max_drawdown", "win_rate", "total_return")
TRADING_PREFIXES = ("", "portfolio/", "trading/", "custom_metrics/")
#: Logged names of the time spent loading training data, in seconds.
DATA_LOAD_METRICS = ("data_load_time", "data_load_time_seconds", "data/load_time", "time/data_load_time")

_INVALID = re.compile(r"[^a-zA-Z0-9_]")


def sanitize(name: str) -> str:
    """``name`` under Prometheus' rules (``[a-zA-Z_][a-zA-Z0-9_]*``), prefixed ``rl_training_``."""
    clean = re.sub(r"_+", "_", _INVALID.sub("_", name)).strip("_").lower()
    if not clean:
        raise ValueError(f"Metric name {name!r} has no letter or digit to export.")
    return PREFIX + clean


class RLTrainingMetrics:
    """The ``rl_training_*`` families in one registry, and the trading stack's recording methods.

    Args:
        registry: where the families live (a new ``CollectorRegistry`` if None).
        max_runs: runs whose ``run_id``-labelled gauge series are kept.
    """

    def __init__(self, registry: CollectorRegistry | None = None, *, max_runs: int = 20) -> None:
        self.registry = registry or CollectorRegistry()
        self.max_runs = max_runs
        r = self.registry
        self.runs_total = Counter(PREFIX + "runs_total", "Training runs by algorithm and status (started, completed, "
                                  "failed)", ["algorithm", "status"], registry=r)
        self.active = Gauge(PREFIX + "active", "Trainings running now", ["algorithm"], registry=r)
        self.duration_seconds = Histogram(PREFIX + "duration_seconds", "Duration of finished trainings",
                                          ["algorithm"], buckets=DURATION_BUCKETS, registry=r)
        self.iterations_total = Counter(PREFIX + "iterations_total", "Training iterations (SB3 rollouts + updates)",
                                        ["algorithm"], registry=r)
        self.current_iteration = Gauge(PREFIX + "current_iteration", "Current iteration of a run",
                                       ["algorithm", "run_id"], registry=r)
        self.episodes_total = Counter(PREFIX + "episodes_total", "Finished episodes", ["algorithm", "agent_id"],
                                      registry=r)
        self.episode_reward = Histogram(PREFIX + "episode_reward", "Reward of finished episodes",
                                        ["algorithm", "agent_id"], buckets=REWARD_BUCKETS, registry=r)
        self.episode_length = Histogram(PREFIX + "episode_length", "Length of finished episodes (steps)",
                                        ["algorithm", "agent_id"], buckets=LENGTH_BUCKETS, registry=r)
        self.episode_reward_mean = Gauge(PREFIX + "episode_reward_mean", "Mean episode reward (SB3 rollout/ep_rew_mean)",
                                         ["algorithm", "run_id"], registry=r)
        self.episode_length_mean = Gauge(PREFIX + "episode_length_mean", "Mean episode length (SB3 rollout/ep_len_mean)",
                                         ["algorithm", "run_id"], registry=r)
        self.sharpe_ratio = Gauge(PREFIX + "sharpe_ratio", "Sharpe ratio", ["algorithm", "agent_id"], registry=r)
        self.max_drawdown = Gauge(PREFIX + "max_drawdown", "Maximum drawdown (%)", ["algorithm", "agent_id"], registry=r)
        self.win_rate = Gauge(PREFIX + "win_rate", "Win rate (%, 0-100)", ["algorithm", "agent_id"], registry=r)
        self.total_return = Gauge(PREFIX + "total_return", "Total return (%)", ["algorithm", "agent_id"], registry=r)
        self.policy_loss = Histogram(PREFIX + "policy_loss", "Policy loss", ["algorithm"], buckets=LOSS_BUCKETS,
                                     registry=r)
        self.value_loss = Histogram(PREFIX + "value_loss", "Value function loss", ["algorithm"], buckets=LOSS_BUCKETS,
                                    registry=r)
        self.entropy = Histogram(PREFIX + "entropy", "Policy entropy", ["algorithm"], buckets=ENTROPY_BUCKETS,
                                 registry=r)
        self.data_load_time_seconds = Histogram(PREFIX + "data_load_time_seconds", "Time to load training data",
                                                buckets=LOAD_BUCKETS, registry=r)
        self.environment_steps_total = Counter(PREFIX + "environment_steps_total", "Environment steps",
                                               ["algorithm"], registry=r)
        self.errors_total = Counter(PREFIX + "errors_total", "Errors by type", ["error_type"], registry=r)
        self._run_gauges = [self.current_iteration, self.episode_reward_mean, self.episode_length_mean]
        self._runs: OrderedDict[tuple[str, str], None] = OrderedDict()
        self._iteration: dict[tuple[str, str], int] = {}
        self._active: dict[str, int] = {}
        self._user: dict[str, tuple[str, Gauge]] = {}  # prometheus name -> (logged name, gauge)
        self._lock = threading.Lock()
        self._reserved = {PREFIX + n for n in (
            "runs", "active", "duration_seconds", "iterations", "current_iteration", "episodes", "episode_reward",
            "episode_length", "episode_reward_mean", "episode_length_mean", "sharpe_ratio", "max_drawdown",
            "win_rate", "total_return", "policy_loss", "value_loss", "entropy", "data_load_time_seconds",
            "environment_steps", "errors")}

    # ------------------------------------------------- the trading stack's recording API

    def record_training_start(self, algorithm: str, run_id: str | None = None) -> None:
        self.runs_total.labels(algorithm, "started").inc()
        with self._lock:
            self._active[algorithm] = self._active.get(algorithm, 0) + 1
            self.active.labels(algorithm).set(self._active[algorithm])
        if run_id:
            self._touch_run(algorithm, run_id)

    def record_training_complete(self, algorithm: str, duration: float, run_id: str | None = None) -> None:
        self.runs_total.labels(algorithm, "completed").inc()
        self.duration_seconds.labels(algorithm).observe(duration)
        self._deactivate(algorithm)

    def record_training_failed(self, algorithm: str, error_type: str = "training_error",
                               run_id: str | None = None) -> None:
        self.runs_total.labels(algorithm, "failed").inc()
        self.errors_total.labels(error_type).inc()
        self._deactivate(algorithm)

    def record_training_iteration(self, algorithm: str, iteration: int, run_id: str = "") -> None:
        """The run is at ``iteration``; the counter grows by the iterations since the last call."""
        before = self._iteration.get((algorithm, run_id), 0)
        self._iteration[(algorithm, run_id)] = int(iteration)
        self.iterations_total.labels(algorithm).inc(max(0, int(iteration) - before))
        self.current_iteration.labels(algorithm, run_id).set(iteration)
        self._touch_run(algorithm, run_id)

    def record_episode_metrics(self, algorithm: str, reward: float | None = None, length: float | None = None, *,
                               agent_id: str = "agent_0", reward_mean: float | None = None,
                               length_mean: float | None = None, run_id: str = "") -> None:
        if reward is not None:
            self.episodes_total.labels(algorithm, agent_id).inc()
            self.episode_reward.labels(algorithm, agent_id).observe(reward)
        if length is not None:
            self.episode_length.labels(algorithm, agent_id).observe(length)
        if reward_mean is not None:
            self.episode_reward_mean.labels(algorithm, run_id).set(reward_mean)
            self._touch_run(algorithm, run_id)
        if length_mean is not None:
            self.episode_length_mean.labels(algorithm, run_id).set(length_mean)
            self._touch_run(algorithm, run_id)

    def record_performance_metrics(self, algorithm: str, metrics: dict[str, float], agent_id: str = "agent_0") -> None:
        """``metrics`` keys: sharpe_ratio, max_drawdown, win_rate, total_return (any subset)."""
        for key in ("sharpe_ratio", "max_drawdown", "win_rate", "total_return"):
            if metrics.get(key) is not None:
                getattr(self, key).labels(algorithm, agent_id).set(metrics[key])

    def record_loss_metrics(self, algorithm: str, policy_loss: float | None = None, value_loss: float | None = None,
                            entropy: float | None = None) -> None:
        if policy_loss is not None:
            self.policy_loss.labels(algorithm).observe(policy_loss)
        if value_loss is not None:
            self.value_loss.labels(algorithm).observe(value_loss)
        if entropy is not None:
            self.entropy.labels(algorithm).observe(entropy)

    def record_data_load_time(self, seconds: float) -> None:
        self.data_load_time_seconds.observe(seconds)

    def record_environment_steps(self, algorithm: str, steps: int) -> None:
        """``steps`` more environment steps were taken."""
        self.environment_steps_total.labels(algorithm).inc(max(0, int(steps)))

    def record_training_error(self, error_type: str) -> None:
        self.errors_total.labels(error_type).inc()

    # ------------------------------------------------------------ other metrics

    def set_metric(self, name: str, value: float, algorithm: str, run_id: str = "") -> None:
        """Export a logged metric as the gauge ``rl_training_<sanitised name>``.

        Raises:
            MetricNameCollision: another logged name, or one of the rl_training_* families,
                maps to the same Prometheus name.
        """
        prom = sanitize(name)
        with self._lock:
            known = self._user.get(prom)
            if known is None:
                if prom in self._reserved or prom.removesuffix("_total") in self._reserved:
                    raise MetricNameCollision(
                        f"Logged metric {name!r} would be exported as {prom!r}, a name of the rl_training_* family; "
                        f"rename the metric.")
                gauge = Gauge(prom, f"Logged metric {name}", ["algorithm", "run_id"], registry=self.registry)
                known = self._user[prom] = (name, gauge)
            elif known[0] != name:
                raise MetricNameCollision(
                    f"Logged metrics {known[0]!r} and {name!r} both map to the Prometheus name {prom!r}; "
                    f"rename one of them.")
        known[1].labels(algorithm, run_id).set(value)
        self._touch_run(algorithm, run_id)

    def _deactivate(self, algorithm: str) -> None:
        with self._lock:
            self._active[algorithm] = max(0, self._active.get(algorithm, 0) - 1)
            self.active.labels(algorithm).set(self._active[algorithm])

    def _touch_run(self, algorithm: str, run_id: str) -> None:
        """Keep ``run_id``'s gauge series; drop the oldest run's past ``max_runs``."""
        key = (algorithm, run_id)
        with self._lock:
            self._runs[key] = None
            self._runs.move_to_end(key)
            while len(self._runs) > self.max_runs:
                old = self._runs.popitem(last=False)[0]
                self._iteration.pop(old, None)
                for gauge in self._run_gauges + [g for _, g in self._user.values()]:
                    try:
                        gauge.remove(*old)
                    except KeyError:
                        pass


# --------------------------------------------------------------------- serving


class MetricsServer:
    """``/metrics`` (Prometheus text format) and ``/health`` (JSON) of one registry."""

    def __init__(self, metrics: RLTrainingMetrics, port: int = DEFAULT_PORT, addr: str = LOCALHOST) -> None:
        self.metrics = metrics
        self.started = time.time()
        handler = _handler(self)
        try:
            self._httpd = ThreadingHTTPServer((addr, port), handler)
        except OSError as exc:
            raise PortInUse(
                f"Cannot serve Prometheus metrics on {addr}:{port} ({exc.strerror}); another exporter may hold it. "
                f"Pass another port, or port=0 for a free one."
            ) from exc
        self._httpd.daemon_threads = True
        self.addr, self.port = self._httpd.server_address[:2]
        self._thread = threading.Thread(target=self._httpd.serve_forever, name=f"trackbook-prometheus-{self.port}",
                                        daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://{self.addr}:{self.port}/metrics"

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


def _handler(server: MetricsServer):
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            path = self.path.split("?", 1)[0]
            if path == "/metrics":
                body, ctype, code = generate_latest(server.metrics.registry), CONTENT_TYPE_LATEST, 200
            elif path == "/health":
                active = sum(s.value for f in server.metrics.active.collect() for s in f.samples)
                body = json.dumps({"status": "ok", "active_trainings": active,
                                   "uptime_seconds": round(time.time() - server.started, 1)}).encode()
                ctype, code = "application/json", 200
            else:
                body, ctype, code = b"not found: try /metrics or /health\n", "text/plain", 404
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:  # scrapes every few seconds: stay quiet
            pass

    return Handler


_default: RLTrainingMetrics | None = None
_servers: dict[int, MetricsServer] = {}
_servers_lock = threading.Lock()


def default_metrics() -> RLTrainingMetrics:
    """The process-wide metrics the helper functions and callbacks record into."""
    global _default
    with _servers_lock:
        if _default is None:
            _default = RLTrainingMetrics()
        return _default


def start_metrics_server(port: int = DEFAULT_PORT, addr: str | None = None, *, host: str | None = None) -> MetricsServer:
    """Serve the process-wide metrics on ``host:port`` (once per port; later calls reuse it).

    Example:
        >>> start_metrics_server(8011, host="0.0.0.0")   # doctest: +SKIP - Prometheus in Docker scrapes it

    Args:
        port: the port (0: a free one).
        addr, host: the address to bind (one name each for the same thing); 127.0.0.1
            unless given. Another address is reachable from outside this machine.

    Raises:
        PortInUse: something else holds the port (``port=0`` picks a free one).
        ValueError: ``addr`` and ``host`` given differently.
    """
    addr = _address(addr, host)
    metrics = default_metrics()
    with _servers_lock:
        if port and port in _servers:
            return _servers[port]
        server = MetricsServer(metrics, port, addr)
        _servers[server.port] = server
        _log.info("trackbook: Prometheus metrics on %s", server.url)
        return server


def serve_or_fallback(port: int, addr: str | None = None, *, host: str | None = None) -> MetricsServer:
    """Like :func:`start_metrics_server`, but a taken port warns and a free one is used."""
    addr = _address(addr, host)
    try:
        return start_metrics_server(port, addr)
    except PortInUse as exc:
        server = start_metrics_server(0, addr)
        warnings.warn(f"{exc} Serving on port {server.port} instead.", RuntimeWarning, stacklevel=2)
        return server


def _address(addr: str | None, host: str | None) -> str:
    if addr and host and addr != host:
        raise ValueError(f"addr={addr!r} and host={host!r} name two addresses; give one.")
    chosen = addr or host or LOCALHOST
    if chosen != LOCALHOST:
        _log.info("trackbook: the Prometheus exporter binds %s, reachable beyond this machine", chosen)
    return chosen


def stop_metrics_server(port: int | None = None) -> None:
    """Stop the server on ``port`` (every server if None)."""
    with _servers_lock:
        ports = list(_servers) if port is None else [port]
        for p in ports:
            server = _servers.pop(p, None)
            if server is not None:
                server.stop()


# The trading stack's helper functions, on the process-wide metrics.
def record_training_start(algorithm: str, run_id: str | None = None) -> None:
    default_metrics().record_training_start(algorithm, run_id)


def record_training_complete(algorithm: str, duration: float, run_id: str | None = None) -> None:
    default_metrics().record_training_complete(algorithm, duration, run_id)


def record_training_failed(algorithm: str, error_type: str = "training_error", run_id: str | None = None) -> None:
    default_metrics().record_training_failed(algorithm, error_type, run_id)


def record_training_iteration(algorithm: str, iteration: int, run_id: str = "") -> None:
    default_metrics().record_training_iteration(algorithm, iteration, run_id)


def record_episode_metrics(algorithm: str, reward: float | None = None, length: float | None = None,
                           **kwargs: Any) -> None:
    default_metrics().record_episode_metrics(algorithm, reward, length, **kwargs)


def record_performance_metrics(algorithm: str, metrics: dict[str, float], agent_id: str = "agent_0") -> None:
    default_metrics().record_performance_metrics(algorithm, metrics, agent_id)


def record_loss_metrics(algorithm: str, policy_loss: float | None = None, value_loss: float | None = None,
                        entropy: float | None = None) -> None:
    default_metrics().record_loss_metrics(algorithm, policy_loss, value_loss, entropy)


def record_data_load_time(seconds: float) -> None:
    default_metrics().record_data_load_time(seconds)


def record_environment_steps(algorithm: str, steps: int) -> None:
    default_metrics().record_environment_steps(algorithm, steps)


def record_training_error(error_type: str) -> None:
    default_metrics().record_training_error(error_type)


# ------------------------------------------------------------- from a training


class TrainingFeed:
    """Turns what a :class:`TrackingCallback` logs into the ``rl_training_*`` families.

    A listener (``callback.add_listener(feed)``) that maps SB3's names: episodes
    (``rollout/episode_reward``/``_length``), ``rollout/ep_rew_mean``/``ep_len_mean``,
    ``time/iterations``, ``train/policy_gradient_loss`` (or ``train/policy_loss``),
    ``train/value_loss``, ``train/entropy_loss`` (entropy = minus it); environment steps
    from the step axis; trading metrics (:data:`TRADING_METRICS`) into the performance
    gauges and data load times (:data:`DATA_LOAD_METRICS`) into their histogram; every
    other metric as a gauge of its own.
    """

    _SKIP = {"rollout/episode_reward", "rollout/episode_length", "rollout/ep_rew_mean", "rollout/ep_len_mean",
             "time/iterations", "train/policy_gradient_loss", "train/policy_loss", "train/value_loss",
             "train/entropy_loss", *DATA_LOAD_METRICS}
    #: logged name -> performance gauge (``portfolio/sharpe_ratio`` -> ``sharpe_ratio``)
    _TRADING = {prefix + name: name for prefix in TRADING_PREFIXES for name in TRADING_METRICS}

    def __init__(self, metrics: RLTrainingMetrics, algorithm: str, run_id: str = "", agent_id: str = "agent_0",
                 start_step: int = 0) -> None:
        self.metrics, self.algorithm, self.run_id, self.agent_id = metrics, algorithm, run_id, agent_id
        self.last_step = start_step
        self.started = time.monotonic()
        self.failed_names: set[str] = set()

    def start(self) -> None:
        self.metrics.record_training_start(self.algorithm, self.run_id)

    def end(self, status: str) -> None:
        if status == C.FINISHED:
            self.metrics.record_training_complete(self.algorithm, time.monotonic() - self.started, self.run_id)
        else:
            self.metrics.record_training_failed(self.algorithm, "training_error" if status == C.FAILED
                                                else "training_killed", self.run_id)

    def __call__(self, metrics: dict[str, Any], step: int) -> None:
        m, alg = self.metrics, self.algorithm
        if step > self.last_step:
            m.record_environment_steps(alg, step - self.last_step)
            self.last_step = step
        m.record_episode_metrics(alg, metrics.get("rollout/episode_reward"), metrics.get("rollout/episode_length"),
                                 agent_id=self.agent_id, reward_mean=metrics.get("rollout/ep_rew_mean"),
                                 length_mean=metrics.get("rollout/ep_len_mean"), run_id=self.run_id)
        if "time/iterations" in metrics:
            m.record_training_iteration(alg, int(metrics["time/iterations"]), self.run_id)
        entropy_loss = metrics.get("train/entropy_loss")
        m.record_loss_metrics(alg, metrics.get("train/policy_gradient_loss", metrics.get("train/policy_loss")),
                              metrics.get("train/value_loss"), None if entropy_loss is None else -float(entropy_loss))
        trading = {self._TRADING[k]: float(v) for k, v in metrics.items() if k in self._TRADING}
        if trading:
            m.record_performance_metrics(alg, trading, self.agent_id)
        for name in DATA_LOAD_METRICS:
            if metrics.get(name) is not None:
                m.record_data_load_time(float(metrics[name]))
        for name, value in metrics.items():
            if name in self._SKIP or name in self._TRADING or name in self.failed_names:
                continue
            try:
                m.set_metric(name, float(value), alg, self.run_id)
            except (MetricNameCollision, ValueError) as exc:
                self.failed_names.add(name)  # said once, then left out
                m.record_training_error("metric_name")
                _log.warning("trackbook: not exported to Prometheus: %s", exc)
