"""What does TrackingCallback cost a training? PPO on CartPole-v1, steps per second.

Usage:
    python benchmarks/callback_overhead.py [--timesteps 20000] [--repeat 3]

Side by side in one process, medians of --repeat trainings of the same seeded PPO:
no callback; TrackingCallback into sqlite and into Aim (every episode's reward and
length plus everything SB3's logger records); and the naive callback people write,
``mlflow.log_metric`` of the reward at every step. Target: TrackingCallback costs
under 5% of steps/second.
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


def steps_per_second(make_callback, timesteps: int) -> float:
    model = PPO("MlpPolicy", Monitor(gym.make("CartPole-v1")), n_steps=512, batch_size=64, seed=0)
    callback = make_callback()
    start = time.perf_counter()
    model.learn(timesteps, callback=callback)
    if isinstance(callback, TrackingCallback):
        callback.tracker.flush()  # delivery included: nothing left owed at the end
    return timesteps / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--timesteps", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="trackbook-bench-callback-"))
    variants = {
        "no callback": lambda: None,
        "TrackingCallback -> sqlite": lambda: TrackingCallback(f"sqlite:///{work / 'tb.db'}", experiment="bench"),
        "TrackingCallback -> Aim": lambda: TrackingCallback(f"aim://{work / 'aim'}", experiment="bench"),
        "naive mlflow.log_metric every step -> sqlite": lambda: NaiveMlflowCallback(f"sqlite:///{work / 'naive.db'}"),
    }
    results: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(args.repeat):  # interleaved, so drifts in machine load hit every variant alike
        for name, make in variants.items():
            if name.startswith("naive") and results[name] and args.timesteps > 5000:
                continue  # one naive training is enough to show its cost
            results[name].append(steps_per_second(make, args.timesteps))
    base = statistics.median(results["no callback"])
    print(f"PPO CartPole-v1, {args.timesteps:,} timesteps, median steps/second of {args.repeat} (naive: of "
          f"{len(results[next(n for n in variants if n.startswith('naive'))])}):")
    for name, values in results.items():
        value = statistics.median(values)
        print(f"  {name:<46} {value:8.0f} steps/s   cost {100 * (1 - value / base):6.1f}%")
    print("  target: TrackingCallback costs < 5%")


if __name__ == "__main__":
    main()
