"""The runtimes a tracker's network can run on: eager PyTorch, or ONNX Runtime (the optional `onnx` extra).

The runtime is a property of the network a tracker holds, never of the tracking code: a tracker
package that supports ONNX Runtime builds a network object with the eager model's methods over
onnxruntime sessions, and everything around it (crops, decoding, the harness) stays the same.
"""
from __future__ import annotations

import importlib

import torch

from nas.config import RUNTIMES
from nas.errors import ConfigError

DEFAULT_RUNTIME = "torch"


def check_runtime(runtime: str, key: str = "--runtime") -> None:
    """A known runtime whose packages import; else a one-line ConfigError at `key` (how to install them)."""
    if runtime not in RUNTIMES:
        raise ConfigError(f"unknown runtime {runtime!r}; expected one of {', '.join(RUNTIMES)}", key=key)
    if runtime == "onnxruntime":
        for package in ("onnx", "onnxruntime"):  # torch's exporter writes the graphs with onnx
            try:
                importlib.import_module(package)
            except ImportError:
                raise ConfigError(f"the onnxruntime runtime needs the {package} package: "
                                  "pip install 'tracknas[onnx]'", key=key) from None


def onnxruntime_session(graph: bytes, threads: int | None = None, device: str = "cpu"):
    """An inference session for one ONNX graph, set up for per-frame tracking (the latency tables time
    pieces through it too, so they measure what trackers run).

    `threads` intra-op threads (default: torch's current count, so the harness's one-thread workers
    stay at one thread), one inter-op thread, sequential execution, every graph optimisation. The
    pool's threads spin while a forward runs (no futex wake-up per op: Mobile runs ~100 small ops) and
    stop spinning when it returns (`session.force_spinning_stop`), so between two forwards they leave
    the cores to the tracker's crop and decode and to other workers. Parallel loops split their work
    into dynamically sized blocks (`session.dynamic_block_base`): Mobile's small 16x16 maps leave
    fixed equal blocks waiting on the slowest thread. Together these took the 2-thread forward from
    0.47-0.56x to 0.39-0.42x eager (`benchmarks/bench_onnx_runtime.py`). `device` "cuda" asks for
    onnxruntime's CUDA provider (onnxruntime-gpu).
    """
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or torch.get_num_threads()
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.add_session_config_entry("session.intra_op.allow_spinning", "1")
    options.add_session_config_entry("session.force_spinning_stop", "1")
    options.add_session_config_entry("session.dynamic_block_base", "4")
    options.log_severity_level = 3  # errors only: no per-session warnings on the terminal
    provider = "CUDAExecutionProvider" if device == "cuda" else "CPUExecutionProvider"
    return ort.InferenceSession(graph, options, providers=[provider])
