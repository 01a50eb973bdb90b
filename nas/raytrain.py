"""Ray Train's torch process group on loopback.

Ray Train's TorchConfig starts torch's c10d TCPStore through `init_process_group(init_method=...)`;
the store's server then listens on every interface (`*:<port>`, IPv4 and IPv6) whatever
MASTER_ADDR says, and gloo's pairs listen on the address the host name resolves to. For a private
local instance, rank 0 binds the store's socket to 127.0.0.1 itself and hands it to torch
(`master_listen_fd`), and gloo/NCCL are pinned to the `lo` interface.
"""
from __future__ import annotations

import os

import nas.raytools  # noqa: F401  (loopback-only Ray must be configured before ray is imported)
import ray
from ray.train._internal.worker_group import WorkerGroup as V1WorkerGroup
from ray.train.torch import TorchConfig
from ray.train.torch.config import _set_torch_distributed_env_vars, _TorchBackend

_store_listener: int | None = None  # rank 0's loopback listening socket fd, between the two setup calls


def _open_loopback_listener() -> int:
    """On rank 0: a listening socket on 127.0.0.1 for the store; returns its port."""
    import socket

    global _store_listener
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    port = sock.getsockname()[1]
    _store_listener = sock.detach()  # torch owns the fd from here on
    return port


def _join_loopback_group(*, backend: str, world_rank: int, world: int, port: int, timeout_s: int) -> None:
    """On every rank: join the process group through the loopback store."""
    from datetime import timedelta

    import torch.distributed as dist

    os.environ.update({"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)})
    os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")
    os.environ.setdefault("NCCL_SOCKET_IFNAME", "lo")
    timeout = timedelta(seconds=timeout_s)
    store = dist.TCPStore("127.0.0.1", port, world, is_master=world_rank == 0, timeout=timeout, wait_for_workers=False,
                          master_listen_fd=_store_listener if world_rank == 0 else None)
    dist.init_process_group(backend=backend, store=store, rank=world_rank, world_size=world, timeout=timeout)


class LoopbackTorchBackend(_TorchBackend):
    """Ray Train's torch backend with the process group set up through a store bound to 127.0.0.1."""

    def on_start(self, worker_group, backend_config):
        if not isinstance(worker_group, V1WorkerGroup):
            worker_group.execute(_set_torch_distributed_env_vars)
        port = worker_group.execute_single(0, _open_loopback_listener)
        world = len(worker_group)
        ray.get([worker_group.execute_single_async(i, _join_loopback_group, backend=backend_config.backend,
                                                   world_rank=i, world=world, port=port, timeout_s=backend_config.timeout_s)
                 for i in range(world)])


class LoopbackTorchConfig(TorchConfig):
    @property
    def backend_cls(self):
        return LoopbackTorchBackend


def torch_config(backend: str, address: str | None = None) -> TorchConfig:
    """Ray Train's TorchConfig: loopback-only for a private instance, Ray's own for a cluster (`address`)."""
    return TorchConfig(backend=backend) if address else LoopbackTorchConfig(backend=backend)
