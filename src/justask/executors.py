"""Where fan-out jobs (rollout chunks, evaluation runs) execute: this process, a local spawn pool,
or a Dask cluster, chosen by the ``scale`` section of params.yaml.

Jobs are module-level functions of picklable arguments (file paths, seeds, configs; never live
models or envs), and results come back in input order, so what an executor computes never
depends on which executor it is or how many workers it has. The Dask executor is the engine
Prefect's ``DaskTaskRunner`` wraps; stages use it directly, without a Prefect API per stage.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Executor, ProcessPoolExecutor, as_completed
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from justask.config import ScaleConfig

T = TypeVar("T")
R = TypeVar("R")


def _share_cores(threads: int) -> None:
    """Give each pool process its share of the cores for torch's (and BLAS's) threads: by default
    every process would start one thread per core, and oversubscribed threads spin-wait (2 processes
    x 2 threads on 2 cores run small forward passes many times slower). Thread counts do not change
    results on CPU (checked bit for bit for the models' layers)."""
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, str(threads))
    if "torch" in sys.modules:  # imported already (by the spawned main module): the variables are read
        sys.modules["torch"].set_num_threads(int(os.environ["OMP_NUM_THREADS"]))


@contextmanager
def open_executor(workers: int, scale: ScaleConfig | None = None) -> Iterator[Executor | None]:
    """An executor for ``workers`` parallel jobs, shut down (cluster included) on exit.

    Yields None (run in this process) for the process executor with ``workers <= 1``. With
    ``scale.executor == "dask"`` it connects to ``scale.dask_address`` or starts a local cluster
    of ``workers`` single-threaded worker processes for the duration of the block.
    """
    executor = "process" if scale is None else scale.executor
    if executor == "process":
        if workers <= 1:
            yield None
            return
        pool = ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn"), initializer=_share_cores,
                                   initargs=(max(1, (os.cpu_count() or 1) // workers),))
        try:
            yield pool
        except BaseException:
            # A job failed, or the stage is stopping (Ctrl-C, SIGTERM): end the running jobs now instead
            # of waiting for them (a fit can take minutes), then drop the queued ones.
            for proc in list((getattr(pool, "_processes", None) or {}).values()):
                proc.terminate()
            pool.shutdown(wait=True, cancel_futures=True)
            raise
        pool.shutdown(wait=True)
        return
    from distributed import Client, LocalCluster

    if scale.dask_address is not None:
        with Client(scale.dask_address) as client:
            yield client.get_executor(pure=False)  # pure=False: never merge two equal submissions
        return
    with (LocalCluster(n_workers=max(1, workers), threads_per_worker=1, processes=True,
                       dashboard_address=None) as cluster,
          Client(cluster) as client):
        yield client.get_executor(pure=False)


def run_all(fn: Callable[[T], R], items: Sequence[T], workers: int, scale: ScaleConfig | None = None,
            on_result: Callable[[int, R], Any] | None = None) -> list[R]:
    """``[fn(item) for item in items]``, fanned out by :func:`open_executor`; ``on_result(i, r)`` is
    called as each finishes (in completion order). ``fn`` must be a module-level function."""
    results: list[Any] = [None] * len(items)
    with open_executor(min(workers, max(1, len(items))), scale) as pool:
        if pool is None:
            for i, item in enumerate(items):
                results[i] = fn(item)
                if on_result is not None:
                    on_result(i, results[i])
            return results
        futures = {pool.submit(fn, item): i for i, item in enumerate(items)}
        for fut in as_completed(futures):
            i = futures[fut]
            results[i] = fut.result()
            if on_result is not None:
                on_result(i, results[i])
    return results
