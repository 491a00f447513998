"""What the writers take from a reader's world, named as types without importing it.

``trackbook.tracking`` sits below ``trackbook.store`` (DESIGN.md's layers), so it names
a :class:`~trackbook.store.Store` by the little it uses of one: its ``uri`` to write
to, and, to continue a run, ``run()`` and ``download_artifact()``. A Store is both.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Protocol, TypeAlias, Union


class NamesAStore(Protocol):
    """A store object, written to as given: a :class:`~trackbook.store.Store`."""

    @property
    def uri(self) -> str: ...


class RunReader(Protocol):
    """What continuing a run needs of a :class:`~trackbook.store.Store`."""

    @property
    def uri(self) -> str: ...

    def run(self, run_id: str) -> Any: ...

    def download_artifact(self, run_id: str, path: str, dst: str | Path | None = None) -> Path: ...


#: Where a writer writes: a :class:`~trackbook.store.Store` (written to as given), a
#: tracking URI or path (``sqlite:///mlflow.db``, ``http://...``, ``aim:///runs``, a
#: folder), or None for the one the environment names (see ``trackbook._uri.resolve_uri``).
StoreLike: TypeAlias = Union[NamesAStore, str, "os.PathLike[str]", None]
