"""Run one function per scene in worker processes, in order, with a progress bar.

Each worker handles one scene at a time, so peak memory is bounded by what one scene
needs, times ``jobs``. Workers report their own peak resident memory, which the stages
log and the preprocessing benchmark reports. Workers never outlive the process that
started them: killed with SIGKILL, a stage takes its workers (and with them the
forkserver and resource tracker) down within a second.
"""

from __future__ import annotations

import multiprocessing
import os
import resource
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import Any

from tqdm import tqdm

from aerialseg.core.atomic import process_started


def resolve_jobs(jobs: int | None, tasks: int) -> int:
    """Worker processes to use: ``jobs`` (None or 0: every core), never more than tasks."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(jobs or cores, tasks))


def peak_rss_mb() -> float:
    """This process's peak resident memory so far, in MB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _call(function: Callable, item: Any) -> tuple[Any, float]:
    return function(item), peak_rss_mb()


def process_alive(pid: int) -> bool:
    """Whether process ``pid`` exists and has not died (a zombie awaiting its parent counts as dead)."""
    return process_started(pid) is not None


def _exit_when_gone(pid: int, interval: float) -> None:
    while process_alive(pid):
        time.sleep(interval)
    os._exit(1)


def _worker_setup(owner: int) -> None:
    """Single-threaded OpenCV (workers are the parallelism), and die with the stage that owns us.

    A worker's parent is the forkserver, not the stage, so the kernel's parent-death
    signal cannot tie it to the stage; a watchdog thread does.
    """
    import cv2

    cv2.setNumThreads(1)
    threading.Thread(target=_exit_when_gone, args=(owner, 0.25), daemon=True).start()


def map_scenes(function: Callable[[Any], Any], items: Sequence[Any], jobs: int | None,
               desc: str) -> tuple[list[Any], float]:
    """``[function(item) for item in items]`` over worker processes; also the largest worker peak RSS (MB).

    ``function`` must be picklable (a module-level function or a ``functools.partial`` of
    one). The first exception raised by any item is raised here, after the pool stops.
    """
    workers = resolve_jobs(jobs, len(items))
    results: list[Any] = []
    peak = 0.0
    with tqdm(total=len(items), desc=desc, unit="scene") as bar:
        if workers == 1:
            for item in items:
                results.append(function(item))
                bar.update()
            return results, peak_rss_mb()
        # forkserver: workers start clean, not as forks of a process whose OpenCV (or
        # TensorFlow) thread pools would deadlock them. The server imports the function's
        # module once, so later pools of this process fork ready workers at once.
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload([__name__, getattr(function, "func", function).__module__])
        with ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=_worker_setup,
                                 initargs=(os.getpid(),)) as pool:
            for result, rss in pool.map(_call, [function] * len(items), items):
                results.append(result)
                peak = max(peak, rss)
                bar.update()
    return results, peak
