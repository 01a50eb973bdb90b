"""Starting or joining Ray, loopback-only and quiet by default.

Ray binds its GCS and raylet to 127.0.0.1 only when `RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0` is in the
environment *when ray is first imported*, so this module sets it (unless the user set it) before
importing ray, and refuses to start a local instance if ray was imported too early. To join a
multi-machine cluster with `--address`, export `RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=1` yourself.
Ray Train's torch process group (the c10d store, gloo/NCCL) is kept on loopback by `nas.raytrain`.

The terminal shows tracknas's own progress only. Ray's output stays in files:
- workers' and actors' stdout/stderr are not forwarded to the driver (`log_to_driver=False`); stages
  that want a worker's progress relay it themselves (see `nas.train.supernet_trainer`);
- Ray Train's print patch is off: it tees every worker `print` to stdout *and* to a logger on stderr,
  which is why forwarded progress lines used to appear twice;
- Tune's console output follows `RunConfig(verbose=0)` (its new output engine, on by default,
  prints an experiment header whatever the verbosity, so it is off: `RAY_AIR_NEW_OUTPUT=0`);
- the driver's `ray`, `ray.train`, `ray.tune` and `ray.data` loggers write WARNING and above to
  `<log_dir>/ray-driver.log`, never to the terminal.
Ray's session directory stays in its short temp dir (Unix socket paths under it must fit in 107
bytes, which a run directory's path need not); `<log_dir>/<session name>` links to the session's
logs while Ray runs and becomes a copy of them at `shutdown_ray`. A Ray failure reaches the user
as one `RayFailure` line naming the log file to read.
"""
from __future__ import annotations

import logging
import os
import re
import shutil
from pathlib import Path

from nas.errors import ConfigError, TrackNASError

LOOPBACK_ENV = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_AUTH_MODE": "disabled",
                "RAY_TRAIN_HEALTH_CHECK_INTERVAL_S": "0.2", "RAY_USAGE_STATS_ENABLED": "0",
                "RAY_TRAIN_ENABLE_PRINT_PATCH": "0", "RAY_AIR_NEW_OUTPUT": "0"}
for _key, _value in LOOPBACK_ENV.items():
    os.environ.setdefault(_key, _value)

RAY_LOGGERS = ("ray", "ray.train", "ray.tune", "ray.data")
DRIVER_LOG = "ray-driver.log"
_shown_logs: Path | None = None  # the latest session's logs as the user should read them (see ray_log_dir)
_print_to_stdstream = None  # Ray's own, kept when `init_ray` replaces it (see _raylet_message_to_log)


class RayFailure(TrackNASError):
    """Ray lost a worker or an actor, or a remote task raised; the details are in Ray's log files."""


def quiet_ray_logging(log_file: str | os.PathLike | None) -> None:
    """Send the driver's Ray loggers (WARNING and above) to `log_file` instead of the terminal;
    `None` only raises their level, for the moments before the session's log directory exists."""
    ray_logger = logging.getLogger("ray")
    for name in RAY_LOGGERS:
        logger = logging.getLogger(name)
        logger.setLevel(logging.WARNING)
        for handler in list(logger.handlers):
            if not isinstance(handler, logging.FileHandler):
                logger.removeHandler(handler)
        logger.propagate = logger is not ray_logger  # children reach the file through "ray"
    if log_file is None and not ray_logger.handlers:
        ray_logger.addHandler(logging.NullHandler())  # else logging's last resort prints warnings to stderr
    elif log_file is not None:
        path = os.path.abspath(log_file)
        if not any(getattr(h, "baseFilename", None) == path for h in ray_logger.handlers):
            for handler in list(ray_logger.handlers):
                ray_logger.removeHandler(handler)
                handler.close()
            os.makedirs(os.path.dirname(path), exist_ok=True)
            handler = logging.FileHandler(path, encoding="utf-8")
            handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
            ray_logger.addHandler(handler)


def init_ray(*, address: str | None = None, num_cpus: int | None = None, num_gpus: float | None = None,
             temp_dir: str | os.PathLike | None = None, log_to_driver: bool = False,
             log_dir: str | os.PathLike | None = None) -> bool:
    """Connect to `address`, or start a private local instance; returns True if this call started it.

    An already-initialised Ray is reused (returns False), so callers shut down only what they own.
    `num_gpus` overrides the GPUs a local instance detects (tests declare one on a CPU machine).
    Ray's output goes to files (module docstring); `log_dir` (a run's `logs/`) receives the driver's
    Ray log and a link to the session's logs, otherwise both stay in Ray's session directory.
    """
    global _shown_logs, _print_to_stdstream
    import ray

    if ray.is_initialized():
        return False
    quiet_ray_logging(None if log_dir is None else Path(log_dir) / DRIVER_LOG)
    from ray._private import worker

    _print_to_stdstream = _print_to_stdstream or worker.print_to_stdstream
    worker.print_to_stdstream = _print_to_stdstream if log_to_driver else _raylet_message_to_log
    if address:
        ray.init(address=address, log_to_driver=log_to_driver, logging_level=logging.WARNING)
    else:
        from ray._private import ray_constants

        if ray_constants.ENABLE_RAY_CLUSTER and os.environ.get("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER") == "0":
            raise ConfigError("ray was imported before tracknas could make it loopback-only; import nas.raytools "
                              "first or export RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0", key="ray")
        ray.init(address="local", num_cpus=num_cpus, num_gpus=num_gpus, include_dashboard=False, log_to_driver=log_to_driver,
                 logging_level=logging.WARNING, _temp_dir=None if temp_dir is None else str(os.path.abspath(temp_dir)))
    session_logs = Path(_node_logs())
    if log_dir is None:
        quiet_ray_logging(session_logs / DRIVER_LOG)
        _shown_logs = session_logs
    else:
        _shown_logs = Path(log_dir) / session_logs.parent.name
        if not (_shown_logs.exists() or _shown_logs.is_symlink()):
            _shown_logs.symlink_to(session_logs, target_is_directory=True)
    return True


def shutdown_ray(log_dir: str | os.PathLike | None = None) -> None:
    """Shut Ray down; with `log_dir`, replace the link `init_ray` made there by a copy of the session's
    logs, so they outlive Ray's temp dir."""
    import ray

    session_logs = Path(_node_logs()) if ray.is_initialized() else None
    ray.shutdown()
    if log_dir is None or session_logs is None or not session_logs.is_dir():
        return
    link = Path(log_dir) / session_logs.parent.name
    if link.is_symlink():
        copy = link.with_name(link.name + ".copying")
        shutil.copytree(session_logs, copy, symlinks=True, ignore_dangling_symlinks=True, dirs_exist_ok=True)
        link.unlink()
        copy.rename(link)


def _node_logs() -> str | None:
    from ray._private import worker

    node = getattr(worker, "_global_node", None)
    return None if node is None else node.get_logs_dir_path()


def ray_log_dir() -> str:
    """Where the user reads this process's (current or last) Ray session's logs: the run's
    `logs/<session>` when `init_ray` was given a `log_dir`, else Ray's session directory."""
    logs = _node_logs()
    if logs is None or (_shown_logs is not None and _shown_logs.name == Path(logs).parent.name):
        return str(_shown_logs) if _shown_logs is not None else "the Ray head's session directory"
    return logs


def failure_log(exc: BaseException | None = None) -> str:
    """The log file most likely to explain a Ray failure: the stderr (else stdout) of the worker whose pid
    the error names, else the newest worker stderr holding a traceback, else the session's log directory."""
    logs = Path(ray_log_dir())
    if not logs.is_dir():
        return str(logs)
    for pid in re.findall(r"\bpid[:=]\s*(\d+)", str(exc or "")):
        named = sorted(logs.glob(f"worker-*-{pid}.err"), key=lambda p: p.stat().st_size == 0)
        named += sorted(logs.glob(f"worker-*-{pid}.out"))
        if named:
            return str(named[0])
    for path in sorted(logs.glob("worker-*.err"), key=lambda p: p.stat().st_mtime, reverse=True):
        if "Traceback" in path.read_text(encoding="utf-8", errors="replace"):
            return str(path)
    return str(logs)


def ray_failure(what: str, exc: BaseException) -> RayFailure:
    """One line for a Ray error: what failed, the error's last line, and the log file to read."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    reason = f"{type(exc).__name__}: {lines[-1] if lines else ''}"[:300]
    return RayFailure(f"{what} ({reason}); see {failure_log(exc)}")


def _raylet_message_to_log(data: dict, ignore_prefix: bool) -> None:
    """Stands in for `ray._private.worker.print_to_stdstream` when workers' output is not forwarded: the
    driver's error listener prints the raylet's messages (e.g. "A worker died or was killed ...") with it
    whatever `log_to_driver` says; they go to the driver's Ray log instead."""
    for line in data.get("lines", ()):
        logging.getLogger("ray").error("(%s) %s", data.get("pid"), line)
