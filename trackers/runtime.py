"""The runtimes a tracker's network can run on: eager PyTorch, or ONNX Runtime (the optional `onnx` extra).

The runtime is a property of the network a tracker holds, never of the tracking code: a tracker
package that supports ONNX Runtime builds a network object with the eager model's methods over
onnxruntime sessions, and everything around it (crops, decoding, the harness) stays the same.
"""
from __future__ import annotations

import importlib

import torch

from nas.errors import ConfigError

RUNTIMES = ("torch", "onnxruntime")
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
    stay at one thread), one inter-op thread, sequential execution, every graph optimisation.
    Spinning is off: between two forwards the tracker crops and decodes, and idle threads that spin
    would take the cores those steps (and the other workers) need. `device` "cuda" asks for
    onnxruntime's CUDA provider (onnxruntime-gpu).
    """
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or torch.get_num_threads()
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.log_severity_level = 3  # errors only: no per-session warnings on the terminal
    provider = "CUDAExecutionProvider" if device == "cuda" else "CPUExecutionProvider"
    return ort.InferenceSession(graph, options, providers=[provider])
