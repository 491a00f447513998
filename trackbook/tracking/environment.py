"""What a run ran on: Python, packages, CPU/GPU, and the git state of the code."""

from __future__ import annotations

import functools
import os
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

_PACKAGES = ("trackbook", "stable-baselines3", "gymnasium", "torch", "numpy", "mlflow", "aim", "optuna", "pandas")


def environment_info(cwd: str | Path | None = None) -> dict[str, Any]:
    """A JSON-able description of the machine, the packages and the git checkout."""
    info: dict[str, Any] = {**_process_info(), "gpu": _gpu()}
    git = git_info(cwd)
    if git:
        info["git"] = git
    return info


@functools.lru_cache(maxsize=1)
def _process_info() -> dict[str, Any]:
    """What cannot change while this process lives (looked up once: package metadata is slow)."""
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "executable": sys.executable,
        "cpu": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "packages": {name: version for name in _PACKAGES if (version := _version(name))},
    }


def environment_tags(info: dict[str, Any]) -> dict[str, str]:
    """The environment as run tags (``env.*`` and ``git.*``), short enough to filter on."""
    tags = {
        "env.python": info["python"],
        "env.platform": info["platform"],
        "env.cpu": str(info["cpu"]),
        "env.gpu": info["gpu"],
    }
    for name, version in info["packages"].items():
        tags[f"env.{name}"] = version
    for key, value in info.get("git", {}).items():
        tags[f"git.{key}"] = str(value)
    return tags


def git_info(cwd: str | Path | None = None) -> dict[str, Any]:
    """Commit, branch and dirty flag of the git checkout around ``cwd``; {} outside one."""

    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=5)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return done.stdout.strip() if done.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    if not commit:
        return {}
    status = git("status", "--porcelain", "--untracked-files=no")
    return {
        "commit": commit,
        "branch": git("rev-parse", "--abbrev-ref", "HEAD") or "",
        "dirty": bool(status),
    }


def _version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def _gpu() -> str:
    torch = sys.modules.get("torch")
    if torch is None:
        return "unknown (torch not loaded)"
    try:
        if torch.cuda.is_available():
            return f"{torch.cuda.device_count()} x {torch.cuda.get_device_name(0)}"
    except Exception:  # noqa: BLE001 - a broken CUDA set-up reads as no GPU
        pass
    return "none"
