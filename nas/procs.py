"""Worker processes die with their driver.

A process pool's workers outlive a driver killed with SIGKILL (no cleanup runs), each holding a
loaded model (~300 MB). `die_with_parent()`, called in a worker's initializer, starts a daemon
thread that exits the worker once its parent is gone (it is re-parented, so `getppid()` changes).
Polling works on every POSIX system and, unlike PR_SET_PDEATHSIG, does not depend on which of the
parent's threads started the worker.
"""
from __future__ import annotations

import os
import threading
import time

POLL_S = 0.5


def die_with_parent(poll_s: float = POLL_S) -> None:
    """Exit this process (status 1, no cleanup) soon after its parent process dies, also when that
    happened before this call (a spawned worker knows its parent's pid from multiprocessing)."""
    import multiprocessing

    spawner = multiprocessing.parent_process()
    parent = spawner.pid if spawner is not None and spawner.pid else os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(poll_s)
        os._exit(1)

    threading.Thread(target=watch, name="die-with-parent", daemon=True).start()
