"""Starting or joining Ray, loopback-only by default.

Ray binds its GCS and raylet to 127.0.0.1 only when `RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0` is in the
environment *when ray is first imported*, so this module sets it (unless the user set it) before
importing ray, and refuses to start a local instance if ray was imported too early. To join a
multi-machine cluster with `--address`, export `RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=1` yourself.
Ray Train's torch process group (the c10d store, gloo/NCCL) is kept on loopback by `nas.raytrain`.
"""
from __future__ import annotations

import os

from nas.errors import ConfigError

LOOPBACK_ENV = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_AUTH_MODE": "disabled",
                "RAY_TRAIN_HEALTH_CHECK_INTERVAL_S": "0.2", "RAY_USAGE_STATS_ENABLED": "0"}
for _key, _value in LOOPBACK_ENV.items():
    os.environ.setdefault(_key, _value)


def init_ray(*, address: str | None = None, num_cpus: int | None = None,
             temp_dir: str | os.PathLike | None = None, log_to_driver: bool = True) -> bool:
    """Connect to `address`, or start a private local instance; returns True if this call started it.

    An already-initialised Ray is reused (returns False), so callers shut down only what they own.
    Workers' output (epoch and progress lines) is forwarded to this terminal unless `log_to_driver`
    is False.
    """
    import ray

    if ray.is_initialized():
        return False
    if address:
        ray.init(address=address, log_to_driver=log_to_driver)
        return True
    from ray._private import ray_constants

    if ray_constants.ENABLE_RAY_CLUSTER and os.environ.get("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER") == "0":
        raise ConfigError("ray was imported before tracknas could make it loopback-only; import nas.raytools "
                          "first or export RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0", key="ray")
    ray.init(address="local", num_cpus=num_cpus, include_dashboard=False, log_to_driver=log_to_driver,
             _temp_dir=None if temp_dir is None else str(os.path.abspath(temp_dir)))
    return True


def ray_log_dir() -> str:
    """Where this process's Ray writes its logs (workers' and controllers' output when not forwarded)."""
    from ray._private import worker

    node = getattr(worker, "_global_node", None)
    return node.get_logs_dir_path() if node is not None else "the Ray head's session directory"
