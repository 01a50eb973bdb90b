"""The DSL's vocabulary: op strings (`grammar`) and located reading of YAML nodes (`reader`).

Below the head kinds and the space, so both can use it; this package imports nothing of the project
but `nas.errors`, and its `__init__` imports nothing at all.
"""
