"""The Prometheus exporter, scraped over real HTTP during and after a real PPO training."""

from __future__ import annotations

import json
import re
import urllib.request
from importlib import resources
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families
from stable_baselines3 import PPO
from stable_baselines3.common.callbacks import BaseCallback

import trackbook as tb
from trackbook import columns as C
from trackbook.servers import free_port
from trackbook.tracking import prometheus as prom
from trackbook.tracking.callback import TrackingCallback

ROOT = Path(__file__).resolve().parents[2]


def scrape(url: str) -> dict[tuple[str, tuple], float]:
    """Every sample of the endpoint as {(name, sorted labels): value}."""
    text = urllib.request.urlopen(url, timeout=10).read().decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def value(samples, name: str, **labels) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


class _ScrapeAt(BaseCallback):
    def __init__(self, cb: TrackingCallback, at: int) -> None:
        super().__init__()
        self.cb, self.at, self.samples = cb, at, None

    def _on_step(self) -> bool:
        if self.samples is None and self.num_timesteps >= self.at:
            self.samples = scrape(self.cb.prometheus_server.url)
        return True


def test_live_metrics_match_what_the_run_logged(tmp_path: Path, cartpole, fresh_metrics):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    port = free_port()
    cb = TrackingCallback(uri, experiment="prom", eval_env=cartpole(), eval_freq=1024, n_eval_episodes=2,
                          prometheus_port=port)
    during = _ScrapeAt(cb, at=1500)
    model = PPO("MlpPolicy", cartpole(), n_steps=256, batch_size=64, seed=0)
    model.learn(3072, callback=[cb, during])
    assert cb.prometheus_server.port == port
    live = during.samples
    assert value(live, "rl_training_active", algorithm="PPO") == 1
    assert value(live, "rl_training_runs_total", algorithm="PPO", status="started") == 1
    assert 1500 <= value(live, "rl_training_environment_steps_total", algorithm="PPO") < 3072

    after = scrape(cb.prometheus_server.url)
    store = tb.connect(uri)
    hist = store.history(cb.run_id, cache=False)

    def logged(metric):
        return hist[hist[C.METRIC] == metric].sort_values(C.STEP)[C.VALUE]

    episodes = len(logged("rollout/episode_reward"))
    assert episodes > 10
    assert value(after, "rl_training_episodes_total", algorithm="PPO", agent_id="agent_0") == episodes
    assert value(after, "rl_training_episode_reward_count", algorithm="PPO", agent_id="agent_0") == episodes
    # the family's reward buckets go negative, so prometheus_client exposes no _sum: check the buckets
    rewards = logged("rollout/episode_reward")
    for le in (0.0, 100.0, 500.0):
        assert value(after, "rl_training_episode_reward_bucket", algorithm="PPO", agent_id="agent_0",
                     le=str(le)) == (rewards <= le).sum()
    assert value(after, "rl_training_episode_length_sum", algorithm="PPO", agent_id="agent_0") == pytest.approx(
        logged("rollout/episode_length").sum())
    assert value(after, "rl_training_environment_steps_total", algorithm="PPO") == 3072
    assert value(after, "rl_training_iterations_total", algorithm="PPO") == logged("time/iterations").iloc[-1] == 12
    assert value(after, "rl_training_current_iteration", algorithm="PPO", run_id=cb.run_id) == 12
    assert value(after, "rl_training_episode_reward_mean", algorithm="PPO", run_id=cb.run_id) == pytest.approx(
        logged("rollout/ep_rew_mean").iloc[-1])
    assert value(after, "rl_training_value_loss_count", algorithm="PPO") == len(logged("train/value_loss"))
    assert value(after, "rl_training_entropy_sum", algorithm="PPO") == pytest.approx(
        -logged("train/entropy_loss").sum())
    # other logged metrics are gauges of their own, names sanitised
    assert value(after, "rl_training_eval_mean_reward", algorithm="PPO", run_id=cb.run_id) == pytest.approx(
        logged("eval/mean_reward").iloc[-1])
    assert value(after, "rl_training_runs_total", algorithm="PPO", status="completed") == 1
    assert value(after, "rl_training_active", algorithm="PPO") == 0
    assert value(after, "rl_training_duration_seconds_count", algorithm="PPO") == 1
    health = json.loads(urllib.request.urlopen(cb.prometheus_server.url.replace("/metrics", "/health")).read())
    assert health["status"] == "ok" and health["active_trainings"] == 0


def test_a_taken_port_warns_and_training_goes_on(tmp_path: Path, cartpole, fresh_metrics):
    port = free_port()
    blocker = prom.MetricsServer(prom.RLTrainingMetrics(), port)  # something else holds the port
    try:
        with pytest.raises(prom.PortInUse, match=f"127.0.0.1:{port}.*port=0"):
            prom.start_metrics_server(port)
        cb = TrackingCallback(f"sqlite:///{tmp_path / 'm.db'}", experiment="prom", prometheus_port=port)
        with pytest.warns(RuntimeWarning, match="Serving on port"):
            PPO("MlpPolicy", cartpole(), n_steps=128, batch_size=64, seed=0).learn(256, callback=cb)
        assert cb.prometheus_server.port != port
        assert value(scrape(cb.prometheus_server.url), "rl_training_runs_total", algorithm="PPO",
                     status="completed") == 1
        assert tb.connect(f"sqlite:///{tmp_path / 'm.db'}").run(cb.run_id)[C.STATUS] == C.FINISHED
    finally:
        blocker.stop()


def test_the_callback_binds_another_address_only_when_told(tmp_path: Path, cartpole, fresh_metrics):
    # 127.0.0.2 is loopback too, standing in for the address a Prometheus in Docker scrapes
    cb = TrackingCallback(f"sqlite:///{tmp_path / 'm.db'}", experiment="prom", prometheus_port=0,
                          prometheus_host="127.0.0.2")
    PPO("MlpPolicy", cartpole(), n_steps=128, batch_size=64, seed=0).learn(256, callback=cb)
    url = cb.prometheus_server.url
    assert url.startswith("http://127.0.0.2:")
    assert value(scrape(url), "rl_training_runs_total", algorithm="PPO", status="completed") == 1
    with pytest.raises(OSError):  # not on 127.0.0.1: bound where it was told, nowhere else
        urllib.request.urlopen(url.replace("127.0.0.2", "127.0.0.1"), timeout=5)


def test_failed_training_counts_as_failed(fresh_metrics):
    metrics = prom.default_metrics()
    feed = prom.TrainingFeed(metrics, "A2C", run_id="r1")
    feed.start()
    feed.end(C.FAILED)
    assert metrics.runs_total.labels("A2C", "failed")._value.get() == 1
    assert metrics.errors_total.labels("training_error")._value.get() == 1


def test_names_are_sanitised_and_collisions_are_errors():
    metrics = prom.RLTrainingMetrics()
    assert prom.sanitize("eval/mean-reward (x100)") == "rl_training_eval_mean_reward_x100"
    metrics.set_metric("eval/mean-reward", 1.0, "PPO", "r")
    with pytest.raises(prom.MetricNameCollision, match="'eval/mean-reward' and 'eval/mean_reward'"):
        metrics.set_metric("eval/mean_reward", 2.0, "PPO", "r")
    with pytest.raises(prom.MetricNameCollision, match="rl_training_\\* family"):
        metrics.set_metric("episode/reward mean", 1.0, "PPO", "r")


def test_run_labelled_series_are_capped():
    metrics = prom.RLTrainingMetrics(max_runs=3)
    for i in range(10):
        metrics.record_training_iteration("PPO", 1, run_id=f"run-{i}")
    runs = {s.labels["run_id"] for f in metrics.current_iteration.collect() for s in f.samples}
    assert runs == {"run-7", "run-8", "run-9"}
    assert metrics.iterations_total.labels("PPO")._value.get() == 10


def test_the_grafana_dashboard_queries_exported_metrics():
    dashboard = json.loads((resources.files("trackbook") / "dashboards" / "grafana_rl_training.json").read_text())
    exported = {f.name for f in prom.RLTrainingMetrics().registry.collect()}
    families = exported | {n + "_total" for n in exported}  # counters are exposed with _total
    panels = [p for p in dashboard["panels"] if p.get("type") != "row"]
    assert len(panels) >= 8
    assert any(i["name"] == "DS_PROMETHEUS" for i in dashboard["__inputs"])
    for panel in panels:
        assert panel["datasource"]["uid"] == "${DS_PROMETHEUS}"
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            names = re.findall(r"rl_training_[a-z_]+", target["expr"])
            assert names, (panel["title"], target["expr"])
            for name in names:
                base = re.sub(r"_(bucket|sum|count)$", "", name)
                assert base in families or name in families, f"{panel['title']}: {name} is not exported"
    # the trading gauges and the data load time each have a panel
    queried = {re.sub(r"_(bucket|sum|count)$", "", n) for p in panels for t in p["targets"]
               for n in re.findall(r"rl_training_[a-z_]+", t["expr"])}
    for family in ("sharpe_ratio", "max_drawdown", "win_rate", "total_return", "data_load_time_seconds"):
        assert prom.PREFIX + family in queried, family
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    grid = [(p["gridPos"]["x"], p["gridPos"]["y"]) for p in panels]
    assert len(grid) == len(set(grid))  # no panel drawn over another


class _TradingMetrics(BaseCallback):
    """Logs what a trading environment reports, through SB3's logger, as the stack's scripts do."""

    def __init__(self) -> None:
        super().__init__()
        self.logged: list[dict[str, float]] = []

    def _on_rollout_end(self) -> None:
        i = len(self.logged) + 1
        values = {"portfolio/sharpe_ratio": 0.5 * i, "max_drawdown": 2.0 + i, "portfolio/win_rate": 50.0 + i,
                  "portfolio/total_return": 1.5 * i, "portfolio/value": 10_000.0 + i}
        if i == 1:
            values["data_load_time"] = 0.75
        for name, v in values.items():
            self.logger.record(name, v)
        self.logged.append(values)

    def _on_step(self) -> bool:
        return True


def test_trading_metrics_feed_the_familys_gauges(tmp_path: Path, cartpole, fresh_metrics):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    cb = TrackingCallback(uri, experiment="prom-trading", prometheus_port=free_port())
    trading = _TradingMetrics()
    PPO("MlpPolicy", cartpole(), n_steps=128, batch_size=64, seed=0).learn(512, callback=[cb, trading])
    after = scrape(cb.prometheus_server.url)
    hist = tb.connect(uri).history(cb.run_id, cache=False)

    def last(metric):
        return hist[hist[C.METRIC] == metric].sort_values(C.STEP)[C.VALUE].iloc[-1]

    agent = {"algorithm": "PPO", "agent_id": "agent_0"}
    # the gauges hold what the run logged last (read back from the store, not from the test's numbers)
    assert value(after, "rl_training_sharpe_ratio", **agent) == pytest.approx(last("portfolio/sharpe_ratio"))
    assert value(after, "rl_training_max_drawdown", **agent) == pytest.approx(last("max_drawdown"))
    assert value(after, "rl_training_win_rate", **agent) == pytest.approx(last("portfolio/win_rate"))
    assert value(after, "rl_training_total_return", **agent) == pytest.approx(last("portfolio/total_return"))
    assert last("portfolio/sharpe_ratio") == 0.5 * len(trading.logged)
    # the load time is observed once; other portfolio metrics are gauges of their own
    assert value(after, "rl_training_data_load_time_seconds_count") == 1
    assert value(after, "rl_training_data_load_time_seconds_sum") == pytest.approx(0.75)
    assert value(after, "rl_training_portfolio_value", algorithm="PPO", run_id=cb.run_id) == pytest.approx(
        last("portfolio/value"))
    # nothing collided
    assert value(after, "rl_training_errors_total", error_type="metric_name") == 0


def test_the_exporter_binds_another_address_only_when_asked(fresh_metrics):
    assert prom.start_metrics_server(0).addr == "127.0.0.1"
    # another loopback address stands in for 0.0.0.0 here (tests bind nothing reachable from outside)
    server = prom.start_metrics_server(0, host="127.0.0.2")
    assert server.addr == "127.0.0.2" and server.url.startswith("http://127.0.0.2:")
    prom.record_performance_metrics("PPO", {"sharpe_ratio": 1.25})
    assert value(scrape(server.url), "rl_training_sharpe_ratio", algorithm="PPO", agent_id="agent_0") == 1.25
    # a callback on the same port serves through the server bound there
    assert prom.serve_or_fallback(server.port) is server
    with pytest.raises(ValueError, match="two addresses"):
        prom.start_metrics_server(0, "127.0.0.1", host="127.0.0.2")
