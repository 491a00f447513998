"""Aim repository plumbing shared by the Aim reader (store/) and writer (tracking/).

Aim 3.29 reads runs through ``.aim/meta/index`` once that index exists, and a closed
run reaches the index only through Aim's background indexer, which a short-lived
writer never waits for. A run written by a script and read by the next process is
then invisible: ``Repo.iter_runs()`` is empty although ``list_all_runs()`` lists it.
:func:`index_pending_runs` brings the index up to date with the run chunks on disk;
writers call it after closing a run and readers before every listing.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from trackbook.errors import StoreUnavailable

_log = logging.getLogger(__name__)


def aim_path(uri: str) -> Path:
    """The repository folder named by an ``aim://`` URI or a plain path."""
    path = uri[len("aim://") :] if uri.startswith("aim://") else uri
    folder = Path(path).expanduser()
    return folder.parent if folder.name == ".aim" else folder


def open_repo(path: Path, *, init: bool = False):
    """Open (or, with ``init``, create) the Aim repository at ``path``."""
    try:
        from aim import Repo
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise StoreUnavailable(
            "Reading an Aim repository needs the 'aim' extra: pip install 'trackbook[aim]'."
        ) from exc
    if not init and not (path / ".aim").is_dir():
        raise StoreUnavailable(
            f"No Aim repository at {path} (no .aim folder). Pass the folder that holds "
            f".aim, or create one with `mkdir -p {path} && aim init --repo {path}`."
        )
    return Repo(str(path), init=init)


@contextlib.contextmanager
def many_runs(repo) -> Iterator[Callable[[str], Any]]:
    """Within it: ``get(run_hash)``, a read-only run or None, for reading many runs at once.

    ``Repo.get_run`` lists every run of the repository to check one, and each run then
    reads its name, experiment and archived flag from Aim's SQL side with a query of its
    own. Here the run list is read once, and the SQL side for all runs in one query,
    which is what Aim's own ``query_metrics`` does (``Repo._prepare_runs_cache``); the
    repository stops using that snapshot on leaving, so later reads see changes.
    """
    from aim.sdk.run import Run

    known = set(repo.meta_tree.subtree("chunks").keys())
    repo._prepare_runs_cache()
    try:
        yield lambda run_hash: Run(run_hash, repo=repo, read_only=True) if run_hash in known else None
    finally:
        repo.run_props_cache_hint = None


def index_pending_runs(repo) -> list[str]:
    """Index the runs whose chunks changed since Aim's index last saw them.

    Returns the hashes indexed. Where the index cannot be written (a read-only
    folder, or its lock held too long), reads fall back to the run chunks themselves,
    which Aim does natively for repositories without an index.
    """
    from aim.sdk.index_manager import RepoIndexManager

    index_folder = Path(repo.path) / "meta" / "index"
    if not index_folder.exists():
        return []  # no index yet: Aim reads every run's chunk directly
    manager = RepoIndexManager.get_index_manager(repo)
    index_tree = repo.request_tree("meta", read_only=True)
    # The chunk folders themselves, not repo.list_all_runs(): Aim caches that listing for
    # 0.5 s per repository path, so a run closed just now in this process is missing from it.
    chunks = Path(repo.path) / "meta" / "chunks"
    hashes = sorted(p.name for p in chunks.iterdir()) if chunks.is_dir() else []
    pending = [h for h in hashes if manager._is_run_index_outdated(h, index_tree)]
    if not pending:
        return []
    try:
        for run_hash in pending:
            manager.index(run_hash)
    except Exception as exc:  # noqa: BLE001 - any failure here means: read the chunks
        _log.warning("Could not update Aim's index at %s (%s); reading run chunks directly.", repo.path, exc)
        _read_through_chunks(repo)
        return []
    # The pool holds a read-only view opened before indexing: reopen it.
    repo.container_pool.clear()
    return pending


def _read_through_chunks(repo) -> None:
    from aim.sdk.repo import ContainerConfig
    from aim.storage.union import RocksUnionContainer

    repo.container_pool.clear()
    union = RocksUnionContainer(str(Path(repo.path) / "meta"), read_only=True)
    # The pool holds its values weakly; the repo object keeps this one alive.
    repo._trackbook_meta_union = union
    repo.container_pool[ContainerConfig("meta", None, True)] = union
