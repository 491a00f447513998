"""Types the writers share, kept apart so that naming them imports nothing heavy."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, TypeAlias, Union

if TYPE_CHECKING:  # writers name the reader's Store but never import it at runtime
    from trackbook.store import Store

#: Where a writer writes: a :class:`~trackbook.store.Store` (written to as given), a
#: tracking URI or path (``sqlite:///mlflow.db``, ``http://...``, ``aim:///runs``, a
#: folder), or None for the one the environment names (see ``resolve_tracking_uri``).
StoreLike: TypeAlias = Union["Store", str, "os.PathLike[str]", None]
