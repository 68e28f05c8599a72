"""Worker processes for prepare that never outlive, or talk over, their parent.

* A worker dies with its parent, however the parent dies (kill -9 included): on Linux
  the kernel sends it SIGKILL (``prctl(PR_SET_PDEATHSIG)``); elsewhere a watchdog thread
  exits when the parent is gone. No process is left writing into the folder.
* No ``multiprocessing.Manager``: its server process outlived a killed parent. Progress
  goes through a plain queue that the workers inherit when they are forked.
* Ctrl-C reaches the whole process group; workers ignore it and the parent stops them,
  so the user sees one line, not a traceback per worker. SIGTERM ends a worker at once
  (the default); prepare's parent turns its own SIGTERM into a Ctrl-C stop.
* A worker that dies (killed for memory, a crash in a native library) ends the run with
  one line saying so. That is why this is a ``ProcessPoolExecutor``, which notices a
  dead worker, and not a ``multiprocessing.Pool``, which waits for its task forever (and
  then hangs in ``terminate()`` as well).
"""
import multiprocessing
from concurrent import futures
from concurrent.futures.process import BrokenProcessPool
import os
import queue as queue_module
import signal
import sys
import threading
import time

_PR_SET_PDEATHSIG = 1
_progress = None  # the inherited progress queue, in a worker


def die_with_parent(parent_pid):
    """Make this process end when ``parent_pid`` ends."""
    if sys.platform.startswith("linux"):
        try:
            import ctypes
            libc = ctypes.CDLL(None, use_errno=True)
            if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) == 0:
                if os.getppid() != parent_pid:  # the parent died before prctl
                    os._exit(1)
                return
        except (OSError, AttributeError):
            pass

    def watch():
        while os.getppid() == parent_pid:
            time.sleep(0.5)
        os._exit(1)
    thread = threading.Thread(target=watch, name="parent-watchdog")
    thread.daemon = True
    thread.start()


def _init(parent_pid, progress, initializer):
    global _progress
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # a forked worker inherits the parent's Python SIGTERM handler (prepare's: "stop like
    # Ctrl-C"); the pool ends its workers with SIGTERM, and they must simply die
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    die_with_parent(parent_pid)
    _progress = progress
    if initializer is not None:
        initializer()


class _Progress(object):
    """What a task sees as its progress channel inside a worker."""

    def put(self, n):
        _progress.put(n)


def _call(args):
    func, item = args
    return func(item, _Progress())


class WorkerDied(ChildProcessError):
    """A worker process ended while the pool was running (an OSError: one line)."""


def _signal_name(number):
    try:
        return signal.Signals(number).name
    except ValueError:
        return "signal %d" % number


def _worker_processes(executor):
    """The executor's worker processes (a private attribute; empty if it ever goes)."""
    return list((getattr(executor, "_processes", None) or {}).values())


def _how_they_died(processes):
    """The exit of the worker that died first, as far as it can be told: the pool ends
    the others with SIGTERM once one is gone, so any other exit is the first one's."""
    codes = [process.exitcode for process in processes if process.exitcode]
    codes.sort(key=lambda code: code == -signal.SIGTERM)
    if not codes:
        return "it was terminated abruptly"
    code = codes[0]
    how = "killed by %s" % _signal_name(-code) if code < 0 else "exit status %d" % code
    return how + (" (out of memory?)" if code == -signal.SIGKILL else "")


def _stop(processes):
    """End the workers now (they may be in the middle of a shard)."""
    for process in processes:
        if process.exitcode is None:
            process.terminate()
    for process in processes:
        process.join(5)


def run_pool(func, items, workers, initializer=None, on_progress=None, on_done=None):
    """``[func(item, progress) for item in items]`` over ``workers`` forked processes,
    in completion order; ``progress.put(n)`` in a task calls ``on_progress(n)`` here.
    An exception of a task is raised here; a worker that dies raises WorkerDied."""
    context = multiprocessing.get_context(
        "fork" if "fork" in multiprocessing.get_all_start_methods() else None)
    progress = context.Queue()
    executor = futures.ProcessPoolExecutor(workers, mp_context=context, initializer=_init,
                                           initargs=(os.getpid(), progress, initializer))
    results, processes = [], []

    def drain():
        while True:
            try:
                n = progress.get_nowait()
            except queue_module.Empty:
                return
            if on_progress:
                on_progress(n)
    try:
        pending = set(executor.submit(_call, (func, item)) for item in items)
        while pending:
            processes = _worker_processes(executor) or processes
            done, pending = futures.wait(pending, timeout=0.2,
                                         return_when=futures.FIRST_COMPLETED)
            for future in done:
                result = future.result()
                results.append(result)
                if on_done:
                    on_done(result)
            drain()
    except BrokenProcessPool:
        _stop(processes)
        raise WorkerDied("a worker process ended while building shards: %s"
                         % _how_they_died(processes))
    except BaseException:
        _stop(_worker_processes(executor) or processes)
        raise
    finally:
        executor.shutdown(wait=True)
        drain()
        progress.close()
    return results
