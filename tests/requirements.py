"""What a test needs from the machine: skipped with the install command here, a failure in CI.

Under CI (``CI=true``) a missing browser, PostgreSQL or server binary fails the run, so a
green CI never hides checks that did not run; on a developer's machine the test is
skipped with the exact command that installs what is missing.
"""

from __future__ import annotations

import os

import pytest

#: The admin URI of a running PostgreSQL server for the tests to use instead of starting one:
#: scripts/mutation starts one for its whole run, so a mutant's fork pays no initdb or migrations.
SHARED_POSTGRES = "TRACKBOOK_TEST_POSTGRES"


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def require(present: bool, what: str, install: str) -> None:
    """Go on if ``present``; else skip (or, under CI, fail) saying ``what`` is missing and how to ``install`` it."""
    if present:
        return
    message = f"{what} is missing: {install}"
    if in_ci():
        pytest.fail(f"CI=true and {message}. CI must run every check; install it in .ci/run or scripts/dev.",
                    pytrace=False)
    pytest.skip(message)
