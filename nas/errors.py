"""One exception family for user-facing errors.

Every error a user can cause (bad DSL file, bad architecture JSON, bad dataset, bad config) is raised
as a `TrackNASError` whose message is a single line naming the file, the key path and what was
expected. The CLI prints it and exits with code 2; no traceback reaches the user.
"""
from __future__ import annotations


class TrackNASError(Exception):
    """A user-facing error; `str(err)` is one line: '<file>: <key path>: <what was expected>'."""

    def __init__(self, message: str, *, source: str | None = None, key: str | None = None):
        parts = [p for p in (source, key, message) if p]
        super().__init__(": ".join(parts).replace("\n", " "))
        self.source, self.key, self.detail = source, key, message


class SpecError(TrackNASError):
    """A search-space DSL file is malformed."""


class ArchError(TrackNASError):
    """An architecture (JSON, genotype or LightTrack path string) does not fit its space."""


class DataError(TrackNASError):
    """A dataset on disk is malformed or unreadable."""


class ConfigError(TrackNASError):
    """A run configuration is malformed."""


class DataWarning(UserWarning):
    """A tolerated oddity in a dataset (zero-area or NaN ground truth), one line per sequence with counts."""


class SkippedSequence(DataWarning):
    """One sequence cannot be tracked or scored (no valid first box); the others still are."""
