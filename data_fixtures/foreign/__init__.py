"""Stores that trackbook did not write: built with other people's SDKs, as they use them.

Usage:
    python -m data_fixtures.foreign OUT_DIR            # every store but the 2,000-run one
    python -m data_fixtures.foreign OUT_DIR --big      # also OUT_DIR/wide.db
    python -m data_fixtures.foreign OUT_DIR --only plain

Stores (one each, so a test reads exactly the case it names):
- ``plain.db``: MLflow written by hand (fluent and client calls), see :mod:`.mlflow_plain`;
- ``optuna.db``: a study logged by ``optuna_integration.MLflowCallback`` (and Optuna's own
  record of it in ``optuna-storage.db``), see :mod:`.optuna_study`;
- ``trading.db``: the RL trading scripts' convention, see :mod:`.trading`;
- ``links.db``: a zoo of broken and odd enhancement links, see :mod:`.links`;
- ``aim/``: ``aim.sb3.AimCallback`` on a short PPO training and plain ``aim.Run``, see
  :mod:`.aim_runs`;
- ``wide.db`` (only with ``--big``): one experiment of 2,000 runs, see :mod:`.wide`.

Nothing here imports ``trackbook.tracking``: these are other people's layouts. Values
come from seeded generators; MLflow and Aim mint their own run ids, and ``ids.json``
maps each store's fixture keys to them (``{store: {key: run_id}}``).
"""

from __future__ import annotations

import json
from pathlib import Path

#: store name -> file or folder under OUT_DIR
STORES = {
    "plain": "plain.db",
    "optuna": "optuna.db",
    "trading": "trading.db",
    "links": "links.db",
    "aim": "aim",
}
BIG_STORES = {"wide": "wide.db"}
#: Optuna's own storage of the study that ``optuna.db`` logged.
OPTUNA_STORAGE = "optuna-storage.db"


def store_uri(out_dir: Path, store: str) -> str:
    """The trackbook/MLflow URI of one fixture store under ``out_dir``."""
    name = {**STORES, **BIG_STORES}[store]
    path = (Path(out_dir) / name).resolve()
    return f"aim://{path}" if store == "aim" else f"sqlite:///{path}"


def artifact_root(out_dir: Path, store: str) -> Path:
    return (Path(out_dir) / f"{store}-artifacts").resolve()


def build_store(out_dir: Path, store: str) -> dict[str, str]:
    """Write one store under ``out_dir``; return its key -> run id map."""
    out_dir = Path(out_dir).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / {**STORES, **BIG_STORES}[store]
    if target.exists():
        raise FileExistsError(f"{target} exists; build the foreign fixtures into an empty folder.")
    if store == "aim":
        from data_fixtures.foreign import aim_runs

        return aim_runs.write(target)
    import importlib

    module = importlib.import_module(
        {"plain": ".mlflow_plain", "optuna": ".optuna_study", "trading": ".trading", "links": ".links",
         "wide": ".wide"}[store], __name__)
    return module.write(store_uri(out_dir, store), artifact_root(out_dir, store), out_dir)


def build(out_dir: Path, *, only: list[str] | None = None, big: bool = False) -> dict[str, dict[str, str]]:
    """Build the stores under ``out_dir`` and write ``ids.json``; return ``{store: {key: id}}``."""
    out_dir = Path(out_dir).resolve()
    names = list(only) if only else [*STORES, *(BIG_STORES if big else {})]
    manifest = out_dir / "ids.json"
    ids = json.loads(manifest.read_text()) if manifest.exists() else {}
    for store in names:
        ids[store] = build_store(out_dir, store)
        manifest.write_text(json.dumps(ids, indent=2, sort_keys=True))
    return ids
