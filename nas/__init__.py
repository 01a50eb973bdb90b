"""tracknas: neural-architecture and evolutionary search for single-object visual trackers."""

__version__ = "0.1.0"
