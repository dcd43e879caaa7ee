"""A Dask worker plugin pinning the workers of :func:`limits.sweeps.local_cluster` to cores of their own (imported
only there, with ``distributed``)."""

from __future__ import annotations

import os

from distributed import WorkerPlugin

__all__ = ["PinToCores"]


class PinToCores(WorkerPlugin):
    """Worker plugin: worker ``i`` of a LocalCluster (and every thread it has or starts) runs on cores
    ``[i * threads, (i + 1) * threads)`` of this process's allowed cores (wrapping around).

    XLA sizes its CPU thread pools by the cores a process may use, and ``XLA_FLAGS`` does not limit all of them: an
    unpinned "single-threaded" worker still spreads over every core, and two of them run no faster than one. Pinned
    before a task first imports JAX, each worker's pools have ``threads`` threads.
    """

    name = "limits-pin-to-cores"

    def __init__(self, threads: int):
        self.threads = threads

    def setup(self, worker) -> None:
        cores = sorted(os.sched_getaffinity(0))
        try:
            index = int(worker.name)
        except (TypeError, ValueError):
            return
        mine = {cores[(index * self.threads + k) % len(cores)] for k in range(self.threads)}
        for task in os.listdir("/proc/self/task"):
            try:
                os.sched_setaffinity(int(task), mine)
            except OSError:
                pass
