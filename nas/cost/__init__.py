"""Cost models: fvcore reference counts, the exact per-choice lookup table, measured latency."""
