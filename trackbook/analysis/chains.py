"""Enhancement chains: runs that continue an earlier run's model.

A child run carries the tag ``base_model_run_id=<base run id>`` and logs
``previous_timesteps``; its steps continue where the base ended, so one metric reads
as one curve across the chain. :class:`Chain` walks the tags back to the root and
puts every point of the chain on one ``global_step`` axis.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from trackbook import columns as C
from trackbook import layout as L
from trackbook.analysis._series import series_summary
from trackbook.errors import ChainCycle

if TYPE_CHECKING:
    from collections.abc import Sequence

    from trackbook.store.base import Store


class Chain:
    """An enhancement chain, root first.

    Example:
        >>> chain = tb.chain(store, final_run_id)                       # doctest: +SKIP
        >>> chain.runs[["name", "position", "offset"]]              # doctest: +SKIP
        >>> chain.history("eval/mean_reward")                       # doctest: +SKIP

    Attributes:
        runs: one row per run (the columns of ``Store.runs()`` plus ``position`` and
            ``offset``), ordered from the root to the run the chain was asked for.
        missing_base: where the walk stopped early, the ``base_model_run_id`` value
            that names no readable run (deleted, in another store, or not a run id);
            None for a complete chain.
    """

    def __init__(self, store: Store, runs: pd.DataFrame, missing_base: str | None = None) -> None:
        self.store = store
        self.runs = runs
        self.missing_base = missing_base

    def __repr__(self) -> str:
        names = " -> ".join(self.runs[C.NAME].astype(str))
        broken = f", missing base {self.missing_base!r}" if self.missing_base else ""
        return f"<Chain of {len(self.runs)} runs: {names}{broken}>"

    def __len__(self) -> int:
        return len(self.runs)

    def history(self, metrics: str | Sequence[str] | None = None) -> pd.DataFrame:
        """The chain's points on one continuous ``global_step`` axis.

        A run's offset is its logged ``previous_timesteps``, else its base's
        ``total_timesteps``, else the base's last global step. Steps already past the
        offset were logged offset (trackbook's callback does so) and are kept; steps
        that restart from 0 are shifted by the offset.

        Returns:
            The columns of ``Store.history()`` plus ``global_step`` and ``segment``
            (the run's position in the chain), ordered by ``global_step``.
        """
        hist = self.store.history(self.runs[C.RUN_ID].tolist(), metrics)
        position = dict(zip(self.runs[C.RUN_ID], self.runs[C.POSITION], strict=True))
        offsets = dict(zip(self.runs[C.RUN_ID], self.runs[C.OFFSET], strict=True))
        offset = hist[C.RUN_ID].map(offsets).to_numpy(dtype="int64")
        first_step = hist.groupby([C.RUN_ID, C.METRIC])[C.STEP].transform("min").to_numpy()
        out = hist.assign(
            **{
                C.GLOBAL_STEP: global_steps(hist[C.STEP].to_numpy(), offset, first_step),
                C.SEGMENT: hist[C.RUN_ID].map(position).astype("int64"),
            }
        )
        return out.sort_values([C.METRIC, C.GLOBAL_STEP, C.SEGMENT], kind="stable", ignore_index=True)


    def links(self, metrics: str | Sequence[str]) -> pd.DataFrame:
        """Before/after of every link: each metric at the end of the base and at the end
        of the enhancement (last finite value by step), the delta and the timesteps added.

        Returns:
            One row per (link, metric), columns ``C.LINK_COLUMNS``; a metric a run did not
            log is NaN there. Empty for a chain of one run.
        """
        metrics = [metrics] if isinstance(metrics, str) else list(metrics)
        if len(self.runs) < 2:
            return pd.DataFrame(columns=C.LINK_COLUMNS)
        hist = self.store.history(self.runs[C.RUN_ID].tolist(), metrics)
        summary = series_summary(hist)
        nan = {"last": np.nan}
        offsets = self.runs[C.OFFSET].tolist() + [None]
        rows = []
        for i in range(1, len(self.runs)):
            run, base = self.runs.iloc[i], self.runs.iloc[i - 1]
            end = _logged(run, L.METRIC_TOTAL_TIMESTEPS)
            added = (end - offsets[i]) if end is not None else np.nan
            for metric in metrics:
                before = summary.get((base[C.RUN_ID], metric), nan)["last"]
                after = summary.get((run[C.RUN_ID], metric), nan)["last"]
                rows.append([i, run[C.RUN_ID], run[C.NAME], base[C.RUN_ID], added, metric, before, after, after - before])
        return pd.DataFrame(rows, columns=C.LINK_COLUMNS)


def chain(store: Store, run_id: str) -> Chain:
    """The enhancement chain that ends at ``run_id``: ``base_model_run_id`` tags walked back to the root.

    Example:
        >>> chain = tb.chain(store, final_run_id)          # doctest: +SKIP
        >>> chain.history("eval/mean_reward")              # doctest: +SKIP

    Runs are read an experiment at a time, so a long chain costs a few queries,
    not one per link; no recursion, so depth is bounded only by memory.

    Raises:
        RunNotFound: ``run_id`` names no run.
        ChainCycle: the tags loop back to a run already on the chain.
    """
    known: dict[str, pd.Series] = {}
    loaded_experiments: set[str] = set()

    def lookup(rid: str) -> pd.Series | None:
        if rid not in known:
            found = store.runs(run_ids=[rid])
            if found.empty:
                return None
            exp_id = found[C.EXPERIMENT_ID].iloc[0]
            if exp_id not in loaded_experiments:
                loaded_experiments.add(exp_id)
                for _, row in store.runs(exp_id).iterrows():
                    known[row[C.RUN_ID]] = row
            known.setdefault(rid, found.iloc[0])
        return known[rid]

    store.lookup([run_id])  # InvalidRunId, RunNotFound
    walked = [lookup(run_id)]
    seen = {run_id: 0}
    missing = None
    while True:
        raw = walked[-1][C.BASE_RUN_ID]
        if not isinstance(raw, str) or not raw.strip():
            break
        base = base_id(store, raw)
        if base is None:
            missing = raw  # not a run id: never sent to a query
            break
        if base in seen:
            raise ChainCycle([*(r[C.RUN_ID] for r in walked[seen[base] :]), base])
        row = lookup(base)
        if row is None:
            missing = raw
            break
        seen[base] = len(walked)
        walked.append(row)
    runs = pd.DataFrame(walked[::-1]).reset_index(drop=True)
    runs.insert(0, C.POSITION, np.arange(len(runs)))
    runs.insert(1, C.OFFSET, _offsets(store, runs))
    return Chain(store, runs, missing)


def chain_tree(store: Store, experiment: str, *, include_single: bool = False) -> pd.DataFrame:
    """Every enhancement chain of an experiment as one tree table.

    Bases in other experiments are followed (and listed). A base id is matched with
    surrounding whitespace removed and, if it names no run as written, in lower case.
    A broken link never stops the table: its run is a row with the reason in
    ``link_problem`` (``cycle``, ``self link``, ``missing base``) and is treated as a
    root; a cycle is cut at its earliest-started run, so the runs continuing it still
    hang below. ``missing_base`` keeps the tag's value where the base names no readable
    run (deleted, in another store, or not a run id at all).

    Example:
        >>> tree = tb.chain_tree(store, "ppo-cartpole")                # doctest: +SKIP
        >>> tree[tree["link_problem"].notna()]                          # doctest: +SKIP

    Args:
        include_single: also list runs that neither continue nor are continued.

    Returns:
        The columns of ``Store.runs()`` plus ``root_run_id``, ``depth`` (root = 0),
        ``children`` (enhancements of the run), ``missing_base`` and ``link_problem``,
        ordered root by root, each tree depth-first. ``base_run_id`` holds the matched
        run id.
    """
    runs = store.runs(experiment)
    known = {rid: row for rid, row in zip(runs[C.RUN_ID], (r for _, r in runs.iterrows()), strict=True)}
    unreadable: set[str] = set()

    def wanted_bases(rows) -> set[str]:
        ids = {base_id(store, b) for b in rows if isinstance(b, str)}
        return {b for b in ids if b is not None and b not in known and b not in unreadable}

    wanted = wanted_bases(runs[C.BASE_RUN_ID])
    while wanted:  # bases in other experiments, a query per level of the tree
        found = store.runs(run_ids=sorted(wanted))
        for _, row in found.iterrows():
            known[row[C.RUN_ID]] = row
        unreadable |= wanted - set(known)
        wanted = wanted_bases(found[C.BASE_RUN_ID])

    base: dict[str, str | None] = {}
    problem: dict[str, str] = {}
    missing: dict[str, str] = {}
    for rid, row in known.items():
        raw = row[C.BASE_RUN_ID]
        resolved = base_id(store, raw) if isinstance(raw, str) and raw.strip() else None
        base[rid] = None
        if not isinstance(raw, str) or not raw.strip():
            continue
        if resolved is None or resolved not in known:
            problem[rid], missing[rid] = C.LINK_MISSING, raw
        elif resolved == rid:
            problem[rid] = C.LINK_SELF
        else:
            base[rid] = resolved

    def started(rid: str):
        return (known[rid][C.START_TIME], rid)

    done: set[str] = set()
    for rid in known:  # find cycles without recursion; cut each at its earliest-started run
        path: list[str] = []
        on_path: dict[str, int] = {}
        cur = rid
        while cur is not None and cur not in done:
            if cur in on_path:
                members = path[on_path[cur]:]
                for member in members:
                    problem[member] = C.LINK_CYCLE
                base[min(members, key=started)] = None
                break
            on_path[cur] = len(path)
            path.append(cur)
            cur = base[cur]
        done.update(path)

    children: dict[str, list[str]] = {}
    for rid in known:
        if base[rid] is not None:
            children.setdefault(base[rid], []).append(rid)
    depth: dict[str, int] = {}
    for rid in known:
        walked, cur = [rid], base[rid]
        while cur is not None and cur not in depth:  # find the root, without recursion
            walked.append(cur)
            cur = base[cur]
        level = -1 if cur is None else depth[cur]
        for r in reversed(walked):
            level += 1
            depth[r] = level
    roots = [rid for rid in known if base[rid] is None]
    rows, root_of = [], {}
    for root in sorted(roots, key=started):
        stack = [root]
        while stack:
            rid = stack.pop()
            root_of[rid] = root
            rows.append(rid)
            stack.extend(sorted(children.get(rid, []), key=started, reverse=True))
    tree = pd.DataFrame([known[r] for r in rows]).reset_index(drop=True)
    if tree.empty:
        return tree.assign(**{C.ROOT_RUN_ID: [], C.DEPTH: [], C.CHILDREN: [], C.MISSING_BASE: [], C.LINK_PROBLEM: []})
    tree[C.BASE_RUN_ID] = pd.Series([base[r] if base[r] is not None else known[r][C.BASE_RUN_ID] for r in rows],
                                    dtype=object)
    tree[C.ROOT_RUN_ID] = [root_of[r] for r in rows]
    tree[C.DEPTH] = [depth[r] for r in rows]
    tree[C.CHILDREN] = [len(children.get(r, ())) for r in rows]
    tree[C.MISSING_BASE] = pd.Series([missing.get(r) for r in rows], dtype=object)
    tree[C.LINK_PROBLEM] = pd.Series([problem.get(r) for r in rows], dtype=object)
    if not include_single:
        in_chain = tree.groupby(C.ROOT_RUN_ID)[C.RUN_ID].transform("size") > 1
        tree = tree[in_chain | tree[C.LINK_PROBLEM].notna()].reset_index(drop=True)
    return tree


def global_steps(steps: np.ndarray, offset: Any, first_step: Any) -> np.ndarray:
    """Steps of a chain's run on the chain's one axis (element-wise over arrays).

    A series whose first step is below the run's offset restarted from 0 (the trading
    scripts log so) and is shifted by it; one that starts at or past it was logged
    offset already (trackbook's callback, SB3 with ``reset_num_timesteps=False``) and
    is kept as it is.
    """
    offset, first_step = np.asarray(offset), np.asarray(first_step)
    return np.where((offset > 0) & (first_step < offset), steps + offset, steps)


def base_id(store: Store, value: str) -> str | None:
    """The run id a ``base_model_run_id`` value names: whitespace around it removed and,
    for a store whose ids are lower case, upper case lowered; None if it is not a run id."""
    text = value.strip()
    if store.run_id_pattern.fullmatch(text):
        return text
    lowered = text.lower()
    return lowered if store.run_id_pattern.fullmatch(lowered) else None


def _logged(run: pd.Series, metric: str) -> int | None:
    value = run.get(C.METRICS_PREFIX + metric)
    return None if value is None or pd.isna(value) else int(value)


def _offsets(store: Store, runs: pd.DataFrame) -> list[int]:
    """Global step at which each run of the chain starts (see :meth:`Chain.history`)."""
    unknown_end = [rid for rid, (_, run) in zip(runs[C.RUN_ID], runs.iterrows(), strict=True)
                   if _logged(run, L.METRIC_TOTAL_TIMESTEPS) is None]
    # Points are read (in one query) only for runs where nothing says where they ended.
    last_steps: dict[str, int] = {}
    if unknown_end:
        ends = store.history(unknown_end).groupby(C.RUN_ID, observed=True)[C.STEP].max()
        last_steps = {str(rid): int(step) for rid, step in ends.items()}
    offsets: list[int] = []
    previous_end = 0
    for _, run in runs.iterrows():
        offset = 0 if run[C.POSITION] == 0 else (_logged(run, L.METRIC_PREVIOUS_TIMESTEPS) or previous_end)
        offsets.append(offset)
        previous_end = _logged(run, L.METRIC_TOTAL_TIMESTEPS)
        if previous_end is None:
            last = int(last_steps.get(run[C.RUN_ID], 0))
            previous_end = last + offset if last < offset else last
    return offsets
