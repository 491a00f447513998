"""Logging that survives a tracking server going away mid-training."""

from __future__ import annotations

import collections
import warnings
from pathlib import Path

from stable_baselines3 import PPO
from stable_baselines3.common.callbacks import BaseCallback

import trackbook as tb
from trackbook.servers import MlflowServer
from trackbook import columns as C
from trackbook.tracking import TrackingCallback, make_tracker


class _Outage(BaseCallback):
    """Stops the real server at one timestep and starts it again at a later one."""

    def __init__(self, server: MlflowServer, down_at: int, up_at: int) -> None:
        super().__init__()
        self.server, self.down_at, self.up_at = server, down_at, up_at
        self.seen_failing = False

    def _on_step(self) -> bool:
        if self.num_timesteps == self.down_at:
            self.server.stop()
        if self.down_at < self.num_timesteps < self.up_at:
            self.seen_failing |= self.locals["callback"].callbacks[0].tracker.delivering
        if self.num_timesteps == self.up_at:
            self.server.start()
        return True


def test_server_down_mid_training_loses_nothing_and_duplicates_nothing(tmp_path: Path, cartpole, monkeypatch):
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")  # let failures reach trackbook's own retry
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "5")
    server = MlflowServer(f"sqlite:///{tmp_path / 'server.db'}", tmp_path / "server")
    server.start()
    try:
        tracker = make_tracker(server.url, flush_interval=0.2, max_points_in_memory=40)
        cb = TrackingCallback(tracker=tracker, experiment="faults", eval_env=cartpole(), eval_freq=512,
                              n_eval_episodes=2)
        sent: collections.Counter = collections.Counter()
        cb.add_listener(lambda metrics, step: sent.update((k, step, float(v)) for k, v in metrics.items()))
        outage = _Outage(server, down_at=600, up_at=2200)
        model = PPO("MlpPolicy", cartpole(), n_steps=256, batch_size=64, seed=0)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            model.learn(3072, callback=[cb, outage])
        assert outage.seen_failing, "the outage was not noticed"
        spill = tracker._outbox._spill_dir
        assert spill is not None and not (spill.exists() and any(spill.iterdir()))  # spilled, then all replayed
        assert not tracker.journal.folder.exists()  # every write acknowledged: the journal is gone
        ours = [w for w in caught if "cannot write to the tracking store" in str(w.message)]
        assert len(ours) == 1  # warned once, not once per failure

        store = tb.connect(server.url)
        run = store.run(cb.run_id)
        assert run[C.STATUS] == C.FINISHED
        hist = store.history(cb.run_id, cache=False)
        stored = collections.Counter(zip(hist[C.METRIC].astype(str), hist[C.STEP], hist[C.VALUE]))
        assert stored == sent  # every point exactly once
        assert sum(n for (k, s, _), n in sent.items() if 600 < s < 2200) > 50  # logged during the outage
    finally:
        server.stop()
