"""What does TrackingCallback cost a training? PPO on CartPole-v1, steps per second.

Usage:
    python benchmarks/callback_overhead.py [--timesteps 20000] [--repeat 7]

Side by side in one process, the same seeded PPO trained with: no callback;
TrackingCallback into sqlite and into Aim (every episode's reward and length, plus
everything SB3's logger records); and the naive callback people write,
``mlflow.log_metric`` of the reward at every step. Target: TrackingCallback costs
under 5% of steps/second.

Two figures per variant, because this shared 2-core machine's wall-clock swings by
tens of percent between identical trainings:
- wall-clock: the median over --repeat rounds of (steps/s with the callback) /
  (steps/s without), each round training both back to back, order alternating;
- accounted: seconds spent inside the callback's hooks plus CPU seconds of the
  tracker's delivery thread, as a share of the training's wall-clock time.
The first TrackingCallback of a process also opens the store (MLflow creates or checks
its tables); that one-time cost is printed apart and left out of both figures.

PyTorch runs on one thread (``--torch-threads 1``, what SB3 advises for small MLP
policies on the CPU), leaving the second core to the delivery thread.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import gymnasium as gym  # noqa: E402
from stable_baselines3 import PPO  # noqa: E402
from stable_baselines3.common.callbacks import BaseCallback  # noqa: E402
from stable_baselines3.common.monitor import Monitor  # noqa: E402

from trackbook.tracking import TrackingCallback  # noqa: E402


class NaiveMlflowCallback(BaseCallback):
    """What a first attempt looks like: one mlflow.log_metric call per environment step."""

    def __init__(self, uri: str) -> None:
        super().__init__()
        self.uri = uri

    def _on_training_start(self) -> None:
        import mlflow

        mlflow.set_tracking_uri(self.uri)
        mlflow.set_experiment("naive")
        mlflow.start_run()

    def _on_step(self) -> bool:
        import mlflow

        mlflow.log_metric("reward", float(self.locals["rewards"][0]), step=self.num_timesteps)
        return True

    def _on_training_end(self) -> None:
        import mlflow

        mlflow.end_run()


class _Timed(TrackingCallback):
    """TrackingCallback that adds up the time spent in its own hooks."""

    hook_seconds = 0.0

    def _timed(self, hook, *args):
        start = time.perf_counter()
        try:
            return hook(self, *args)
        finally:
            self.hook_seconds += time.perf_counter() - start

    def _on_training_start(self) -> None:
        self._timed(TrackingCallback._on_training_start)

    def _on_step(self) -> bool:
        return self._timed(TrackingCallback._on_step)

    def _on_training_end(self) -> None:
        self._timed(TrackingCallback._on_training_end)


def train(callback, timesteps: int) -> float:
    """Seconds to train ``timesteps`` (delivery of every write included)."""
    model = PPO("MlpPolicy", Monitor(gym.make("CartPole-v1")), n_steps=512, batch_size=64, seed=0)
    start = time.perf_counter()
    model.learn(timesteps, callback=callback)
    if isinstance(callback, TrackingCallback):
        callback.tracker.flush()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--timesteps", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--torch-threads", type=int, default=1)
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.torch_threads)
    work = Path(tempfile.mkdtemp(prefix="trackbook-bench-callback-"))
    uris = {"sqlite": f"sqlite:///{work / 'tb.db'}", "Aim": f"aim://{work / 'aim'}"}
    print(f"PPO CartPole-v1, {args.timesteps:,} timesteps, torch threads {args.torch_threads}, {args.repeat} rounds")
    for label, uri in uris.items():  # open each store once: a one-time cost, reported apart
        cb = _Timed(uri, experiment="warm-up")
        seconds = train(cb, 512)
        print(f"  first TrackingCallback -> {label} in this process: {seconds:.2f}s for 512 steps (opens the store)")

    baseline: list[float] = []
    results: dict[str, dict[str, list[float]]] = {label: {"ratio": [], "accounted": []} for label in uris}
    for round_ in range(args.repeat):
        for label, uri in uris.items():
            cb = _Timed(uri, experiment="bench")
            pair = [("none", None), ("tb", cb)]
            if round_ % 2:
                pair.reverse()
            times = {name: train(callback, args.timesteps) for name, callback in pair}
            baseline.append(times["none"])
            results[label]["ratio"].append(times["none"] / times["tb"])
            accounted = cb.hook_seconds + cb.tracker._outbox.delivery_cpu
            results[label]["accounted"].append(accounted / times["tb"])
    naive = train(NaiveMlflowCallback(f"sqlite:///{work / 'naive.db'}"), min(args.timesteps, 5000))
    base_sps = args.timesteps / statistics.median(baseline)
    print(f"  no callback: {base_sps:.0f} steps/s (median)")
    for label, figures in results.items():
        ratio = statistics.median(figures["ratio"])
        accounted = statistics.median(figures["accounted"])
        print(
            f"  TrackingCallback -> {label:<7} {base_sps * ratio:6.0f} steps/s   wall-clock cost "
            f"{100 * (1 - ratio):5.1f}%   accounted cost {100 * accounted:4.1f}%"
        )
    naive_sps = min(args.timesteps, 5000) / naive
    print(f"  naive mlflow.log_metric every step -> sqlite  {naive_sps:6.0f} steps/s   cost "
          f"{100 * (1 - naive_sps / base_sps):5.1f}%")
    print("  target: TrackingCallback costs < 5%")


if __name__ == "__main__":
    main()
