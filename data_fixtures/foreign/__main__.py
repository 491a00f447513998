"""``python -m data_fixtures.foreign OUT_DIR [--big] [--only STORE ...]``."""

from __future__ import annotations

import argparse
from pathlib import Path

from data_fixtures.foreign import BIG_STORES, STORES, build


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Build stores written by MLflow, Optuna and Aim, not trackbook.")
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--only", nargs="+", choices=[*STORES, *BIG_STORES])
    parser.add_argument("--big", action="store_true", help="also the 2,000-run experiment (wide.db)")
    args = parser.parse_args(argv)
    ids = build(args.out_dir, only=args.only, big=args.big)
    for store, mapping in ids.items():
        print(f"{store}: {len(mapping)} runs")


if __name__ == "__main__":
    main()
