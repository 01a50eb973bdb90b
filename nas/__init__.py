"""tracknas: neural-architecture and evolutionary search for single-object visual trackers."""

__version__ = "0.1.0"

# Any tracknas entry point makes Ray loopback-only before ray can be imported (see nas.raytools).
from nas import raytools as _raytools  # noqa: E402,F401
