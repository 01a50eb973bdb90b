"""Latency lookup tables: what each distinct piece of a space costs in time, on this machine and runtime.

The pieces are those of the FLOPs table (`CostTable.build` run with a timer instead of fvcore): every
distinct (block, context) is built and timed in isolation on the input shape it sees in a subnet, so
an architecture's predicted per-frame latency is the sum of its pieces' entries (stem, blocks, BN_x,
fusion, heads: the search branch that `measure_latency` times as `model.track(x, template state)`)
plus one constant overhead, fitted as the median gap between the sum and the end-to-end latency of
a few architectures (Python dispatch, the state dict, output plumbing) timed in the same rounds.

What keeps the timings additive: the table's thread count and device for every piece and for the
end-to-end runs, the exact input shapes, a warm-up per piece, and medians over calls taken in many
short interleaved rounds (each round visits every piece and fit architecture once), so load drift on
a shared machine spreads over all of them instead of biasing the ones timed during a busy second, and
rounds that go on for at least 5 minutes (`TABLE_TIMING`), so the medians span the machine's slower
swings between states too, as a later validation or search does, instead of catching one of them.
What the table cannot remove is the machine's speed drifting between its build and a later use: on a
shared 2-core VM the same architecture measured 25-44 ms within a minute, and bigger architectures
slowed more than small ones (memory-bound work suffers most from busy neighbours). `latency validate`
re-times the table's fit architectures beside its own and reports their `drift` (now / at the build),
and `mape_refit` (the overhead refitted on its own measurements), to tell such drift from a bad model.

Tables are cached keyed by space hash + device + runtime + threads and record the machine they were
made on (CPU model, GPU name, library versions); a table made on another machine is refused in one
line rather than silently used.
"""
from __future__ import annotations

import io
import os
import platform
import sys
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from functools import lru_cache
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import numpy as np
import torch
from torch import nn

from nas.config import DEVICES, LATENCY_DEFAULTS, MAX_THREADS
from nas.cost.table import CostTable, cache_dir
from nas.errors import TrackNASError
from nas.io import atomic_write_json, load_json
from nas.space.space import Arch, SearchSpace
from trackers.lighttrack.model import SearchBranch, build_subnet
from trackers.runtime import RUNTIMES, check_runtime, onnxruntime_session

# 2: the overhead is fitted on architectures timed in the pieces' rounds; 3: they are kept; 4: timed over minutes
LUT_VERSION = 4
_FIT_STREAM, _VALIDATE_STREAM = 1, 2  # independent random streams for the overhead fit and the validation


@dataclass(frozen=True)
class LatencySetting:
    """Which table: the runtime that runs the network, its intra-op threads, the device."""

    runtime: str = LATENCY_DEFAULTS["runtime"]
    threads: int = LATENCY_DEFAULTS["threads"]
    device: str = LATENCY_DEFAULTS["device"]

    def check(self, key: str = "--runtime") -> "LatencySetting":
        """One-line errors for an unknown runtime or device, a bad thread count, or a missing package / GPU."""
        if self.runtime not in RUNTIMES:
            raise TrackNASError(f"expected a runtime in {', '.join(RUNTIMES)}, got {self.runtime!r}", key=key)
        if self.device not in DEVICES:
            raise TrackNASError(f"expected a device in {', '.join(DEVICES)}, got {self.device!r}", key=key)
        if isinstance(self.threads, bool) or not isinstance(self.threads, int) or not 1 <= self.threads <= MAX_THREADS:
            raise TrackNASError(f"expected threads in 1..{MAX_THREADS}, got {self.threads!r}", key=key)
        if self.device == "cuda" and not torch.cuda.is_available():
            raise TrackNASError("device cuda asked for, but torch sees no CUDA device", key=key)
        check_runtime(self.runtime, key)  # onnxruntime: its packages import
        return self

    def describe(self) -> str:
        return f"{self.runtime}, {self.threads} threads, {self.device}"


@dataclass(frozen=True)
class Timing:
    """How pieces and architectures are timed: `warmup` untimed calls each, then `rounds` interleaved
    rounds of `runs // rounds` timed calls (one extra untimed call per visit re-warms the caches); each
    is summarised by the `quantile` of its calls (0.5: the median; a low one such as 0.1 keeps the
    uncontended speed on a loaded machine, where preempted calls inflate the median). Rounds go on
    past `rounds` until `window_s` seconds have passed, so that a median spans the machine's slow
    swings in speed too (tables: `TABLE_TIMING`)."""

    runs: int = 120
    warmup: int = 5
    rounds: int = 40  # many short visits: each median spans the whole timing window, not a busy second of it
    fit_archs: int = 8  # end-to-end measured architectures the constant overhead is fitted on
    quantile: float = 0.5
    window_s: float = 0.0  # more rounds until this long has passed: a median then spans the machine's swings


# Tables are timed over at least 5 minutes: a shared machine's speed swings between states that last a
# minute or two (measured here: 1.0x and 1.4-1.6x), and a 90 s build caught one of them, which a later
# validation spanning several ranked against (Kendall tau 0.73-0.86); see `Timing.window_s`.
TABLE_TIMING = Timing(window_s=300.0)


def cpu_model() -> str:
    """The CPU's model name (/proc/cpuinfo on Linux, else what the platform reports)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def machine_fingerprint(setting: LatencySetting) -> dict[str, str]:
    """What a table's numbers depend on besides the setting: CPU model, GPU, library versions."""
    fingerprint = {"cpu": cpu_model(), "torch": torch.__version__}
    if setting.device == "cuda":
        fingerprint["gpu"] = torch.cuda.get_device_name()
    if setting.runtime == "onnxruntime":
        try:
            fingerprint["onnxruntime"] = version("onnxruntime")
        except PackageNotFoundError:
            check_runtime(setting.runtime)
    return fingerprint


# -- timing ------------------------------------------------------------------------------------------
@contextmanager
def _threads(count: int) -> Iterator[None]:
    previous = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def median_times_us(calls: Sequence[Callable[[], object]], timing: Timing) -> list[float]:
    """Microseconds of each call (the `timing.quantile` of its timed calls, by default the median),
    timed in interleaved rounds (see `Timing`): `timing.rounds` of them, more until `timing.window_s` has passed."""
    samples: list[list[float]] = [[] for _ in calls]
    per_round = max(1, timing.runs // timing.rounds)
    for call in calls:
        for _ in range(timing.warmup):
            call()
    began, rounds = time.monotonic(), 0
    while rounds < timing.rounds or time.monotonic() - began < timing.window_s:
        rounds += 1
        for call, times in zip(calls, samples):
            call()
            for _ in range(per_round):
                start = time.perf_counter_ns()
                call()
                times.append((time.perf_counter_ns() - start) / 1e3)
    return [float(np.quantile(times, timing.quantile)) for times in samples]


def _torch_call(fn: Callable[..., object], inputs: tuple[torch.Tensor, ...], device: str) -> Callable[[], object]:
    if device == "cuda":
        def call():
            fn(*inputs)
            torch.cuda.synchronize()
        return call
    return lambda: fn(*inputs)


def _onnx_call(module: nn.Module, inputs: tuple[torch.Tensor, ...], setting: LatencySetting) -> Callable[[], object]:
    """`module` exported to ONNX (in memory) and run by an onnxruntime session with the setting's threads."""
    names = [f"input{i}" for i in range(len(inputs))]
    graph = io.BytesIO()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter is deprecated; it needs no extra package
        torch.onnx.export(module.eval(), tuple(t.cpu() for t in inputs), graph, input_names=names, dynamo=False)
    session = onnxruntime_session(graph.getvalue(), setting.threads, setting.device)
    used = {i.name for i in session.get_inputs()}  # an input the graph does not read is dropped by the exporter
    feeds = {name: t.cpu().numpy() for name, t in zip(names, inputs) if name in used}
    return lambda: session.run(None, feeds)


def _piece_call(module: nn.Module, inputs: tuple[torch.Tensor, ...], setting: LatencySetting) -> Callable[[], object]:
    if setting.runtime == "onnxruntime":
        return _onnx_call(module, inputs, setting)
    module = module.to(setting.device).eval()
    return _torch_call(module, tuple(t.to(setting.device) for t in inputs), setting.device)


def _arch_call(space: SearchSpace, arch: Arch, setting: LatencySetting) -> Callable[[], object]:
    """One frame of `arch`'s search branch, as `measure_latency` times it: `track(x, cached template state)`."""
    spec = space.spec
    model = build_subnet(space, arch).to(setting.device).eval()
    z = torch.randn(1, 3, spec.template_size, spec.template_size, device=setting.device)
    x = torch.randn(1, 3, spec.search_size, spec.search_size, device=setting.device)
    with torch.inference_mode():
        state = model.template(z)
    if setting.runtime == "onnxruntime":
        return _onnx_call(SearchBranch(model, state), (x, *state.values()), setting)
    return _torch_call(model.track, (x, state), setting.device)


def measure_archs_us(space: SearchSpace, archs: Sequence[Arch], setting: LatencySetting, timing: Timing) -> list[float]:
    """End-to-end per-frame latency (median microseconds) of each architecture, timed in interleaved rounds."""
    return _time_pieces_and_archs({}, space, archs, setting, timing)[1]


def _time_pieces_and_archs(pieces: dict[tuple, tuple[Callable[[], nn.Module], tuple[tuple[int, ...], ...]]],
                           space: SearchSpace, archs: Sequence[Arch], setting: LatencySetting,
                           timing: Timing) -> tuple[dict[tuple, float], list[float]]:
    """Microseconds of every piece (on random inputs of its shapes) and of each architecture end to end,
    all timed in the same interleaved rounds: the overhead fitted on their gap then sees the machine at
    the same speed as the pieces (timed apart, a shared machine's speed drifts by tens of percent between
    the two)."""
    with _threads(setting.threads):
        calls = [_piece_call(build(), tuple(torch.randn(*shape) for shape in shapes), setting)
                 for build, shapes in pieces.values()]
        calls += [_arch_call(space, arch, setting) for arch in archs]
        with torch.inference_mode():
            times = median_times_us(calls, timing)
    return dict(zip(pieces, times)), times[len(pieces):]


class _Pieces:
    """A `Trace` that only records each distinct piece (first pass of `CostTable.build`)."""

    def __init__(self):
        self.found: dict[tuple, tuple[Callable[[], nn.Module], tuple[tuple[int, ...], ...]]] = {}

    def __call__(self, key: tuple, build: Callable[[], nn.Module], shapes: tuple[tuple[int, ...], ...]) -> tuple[int, int]:
        self.found.setdefault(key, (build, shapes))
        return 0, 0


# -- the table -----------------------------------------------------------------------------------------
class LatencyTable:
    """Predicted per-frame latency of any architecture of one space, for one `LatencySetting`.

    `costs` is a `CostTable` whose column 0 holds search-branch microseconds and column 1 template
    microseconds (params are not timed: 0); `overhead_us` is the fitted constant."""

    def __init__(self, space: SearchSpace, data: dict):
        self.space, self.data = space, data
        self.setting = LatencySetting(**data["setting"])
        self.overhead_us = float(data["overhead_us"])
        self.costs = CostTable(space, data["table"])
        fit = data["fit"]  # the overhead's architectures and their build-time microseconds (`validate` re-times them)
        self.fit = [(Arch(space, tuple(g)), float(us))
                    for g, us in zip(fit["genotypes"], fit["measured_us"], strict=True)]

    def predict_us(self, arch: Arch | tuple[int, ...]) -> float:
        return self.costs.flops(arch) + self.overhead_us

    def predict_ms(self, arch: Arch | tuple[int, ...]) -> float:
        return self.predict_us(arch) / 1e3

    def annotate(self, cost: dict, arch: Arch | tuple[int, ...]) -> dict:
        """`cost` (a `CostTable.cost`) with the predicted `latency_ms` added."""
        return {**cost, "latency_ms": self.predict_ms(arch)}

    def range_ms(self) -> tuple[float, float]:
        """Exact (min, max) predicted latency over the whole space."""
        low, high = self.costs.extremes()["flops"]
        return (low + self.overhead_us) / 1e3, (high + self.overhead_us) / 1e3

    @classmethod
    def build(cls, space: SearchSpace, setting: LatencySetting, timing: Timing = TABLE_TIMING, seed: int = 0,
              progress: bool = False) -> "LatencyTable":
        """Time every distinct piece of the space and `timing.fit_archs` random architectures together, and
        fit the overhead as the median gap between those architectures' time and their pieces' sum."""
        setting.check()
        pieces = _Pieces()
        CostTable.build(space, pieces)
        rng = np.random.default_rng([seed, _FIT_STREAM])
        fit = [space.sample(rng) for _ in range(timing.fit_archs)]
        if progress:
            span = f" over at least {timing.window_s:.0f} s" if timing.window_s else ""
            print(f"latency table for {space.name} ({setting.describe()}): timing {len(pieces.found)} pieces and "
                  f"{timing.fit_archs} architectures{span}...", file=sys.stderr, flush=True)
        times, measured = _time_pieces_and_archs(pieces.found, space, fit, setting, timing)
        costs = CostTable.build(space, lambda key, build, shapes: (times[key], 0))
        overhead = float(np.median([m - costs.flops(a) for m, a in zip(measured, fit)])) if fit else 0.0
        data = {"version": LUT_VERSION, "space": space.name, "space_hash": space.hash, "setting": asdict(setting),
                "machine": machine_fingerprint(setting), "timing": asdict(timing), "pieces": len(times),
                "overhead_us": overhead, "table": costs.data,
                "fit": {"genotypes": [list(a.genotype) for a in fit], "measured_us": measured}}
        return cls(space, data)


def table_path(space: SearchSpace, setting: LatencySetting) -> Path:
    return (cache_dir() / "latency" /
            f"{space.name}-{space.hash}-{setting.device}-{setting.runtime}-t{setting.threads}-v{LUT_VERSION}.json")


def build_latency_table(space: SearchSpace, setting: LatencySetting, timing: Timing = TABLE_TIMING,
                        progress: bool = True) -> tuple[LatencyTable, Path]:
    """Build the table and write it to its cache file (replacing any), dropping in-process copies."""
    table = LatencyTable.build(space, setting, timing, progress=progress)
    path = atomic_write_json(table_path(space, setting), table.data, indent=None)
    latency_table.cache_clear()
    return table, path


def read_latency_table(space: SearchSpace, setting: LatencySetting) -> LatencyTable | None:
    """The cached table, None when there is none (or an unusable one, with a warning); a table made on
    another machine is refused with one line."""
    path = table_path(space, setting)
    if not path.is_file():
        return None
    try:
        data = load_json(path, what="latency table")
    except TrackNASError as err:
        print(f"warning: {err}; rebuilding it", file=sys.stderr, flush=True)
        return None
    machine = machine_fingerprint(setting)
    if isinstance(data, dict) and isinstance(data.get("machine"), dict) and data["machine"] != machine:
        theirs = ", ".join(f"{k} {v}" for k, v in data["machine"].items())
        ours = ", ".join(f"{k} {v}" for k, v in machine.items())
        raise TrackNASError(f"latency table made on another machine ({theirs}), not on this one ({ours}); rebuild it "
                            f"here with `tracknas latency build {space.name} --runtime {setting.runtime} "
                            f"--threads {setting.threads} --device {setting.device}`", source=str(path))
    try:
        if data.get("space_hash") != space.hash or data.get("version") != LUT_VERSION:
            raise ValueError("made for another space or table version")
        table = LatencyTable(space, data)
        table.predict_us(tuple(0 for _ in space.genes))  # a damaged entry fails here, not later
        return table
    except (ValueError, KeyError, TypeError, IndexError, AttributeError) as exc:
        print(f"warning: {path}: unusable latency table ({type(exc).__name__}); rebuilding it",
              file=sys.stderr, flush=True)
        return None


@lru_cache(maxsize=16)
def latency_table(space: SearchSpace, setting: LatencySetting, timing: Timing = TABLE_TIMING) -> LatencyTable:
    """The space's table for `setting`: from the cache when there is one, else built with `timing` (tens of
    seconds to minutes) and cached."""
    setting.check()
    table = read_latency_table(space, setting)
    if table is None:
        table, _ = build_latency_table(space, setting, timing)
    return table


# -- validation ------------------------------------------------------------------------------------------
def kendall_tau(a: np.ndarray, b: np.ndarray) -> float:
    """Kendall's tau-b (ties in either list handled as scipy.stats.kendalltau does)."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    da, db = np.sign(a[:, None] - a[None, :]), np.sign(b[:, None] - b[None, :])
    upper = np.triu_indices(len(a), 1)
    da, db = da[upper], db[upper]
    denom = np.sqrt(float(np.sum(da != 0)) * float(np.sum(db != 0)))
    return float(np.sum(da * db) / denom) if denom else float("nan")


def validate_table(space: SearchSpace, setting: LatencySetting, archs: int = 50, seed: int = 0,
                   timing: Timing = TABLE_TIMING) -> dict:
    """Predicted vs end-to-end measured latency of `archs` random architectures (others than the fit's),
    measured as the table was timed (its `Timing`); `timing` builds the table when none is cached.

    `mape` and `max_error` are percentages of the measured latency; `kendall_tau` ranks the two lists;
    `drift` is the ratio of the table's fit architectures' latency now to theirs at the build (min, median, max)."""
    table = latency_table(space, setting, timing)
    timing = Timing(**table.data["timing"])
    rng = np.random.default_rng([seed, _VALIDATE_STREAM])
    sample = [space.sample(rng) for _ in range(archs)]
    times = measure_archs_us(space, sample + [arch for arch, _ in table.fit], setting, timing)
    measured = np.array(times[:archs]) / 1e3
    # the table's fit architectures, timed again in these rounds: how far the machine's speed has moved since
    # the build (1.0: as then); a shared machine drifts, and not uniformly, which no table can predict
    drift = np.array(times[archs:]) / np.array([us for _, us in table.fit])
    predicted = np.array([table.predict_ms(a) for a in sample])
    errors = np.abs(predicted - measured) / measured * 100.0
    # the error left with the overhead refitted on these measurements: drift of the machine's speed between
    # the build and now (load on a shared machine) shows as mape >> mape_refit, non-additivity in both
    refit = predicted + float(np.median(measured - predicted))
    return {"space": space.name, "runtime": setting.runtime, "threads": setting.threads, "device": setting.device,
            "archs": archs, "mape": float(np.mean(errors)), "max_error": float(np.max(errors)),
            "mape_refit": float(np.mean(np.abs(refit - measured) / measured * 100.0)),
            "kendall_tau": kendall_tau(predicted, measured), "overhead_ms": table.overhead_us / 1e3,
            "drift": {"median": float(np.median(drift)), "min": float(drift.min()), "max": float(drift.max())}
            if len(drift) else None,
            "measured_ms": {"min": float(measured.min()), "median": float(np.median(measured)),
                            "max": float(measured.max())},
            "quantile": timing.quantile, "machine": table.data["machine"], "load_average": list(_load_average())}


def _load_average() -> tuple[float, ...]:
    try:
        return tuple(round(v, 2) for v in os.getloadavg())
    except (OSError, AttributeError):
        return ()
