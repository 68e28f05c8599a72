"""Worker processes for prepare that never outlive, or talk over, their parent.

* A worker dies with its parent, however the parent dies (kill -9 included): on Linux
  the kernel sends it SIGKILL (``prctl(PR_SET_PDEATHSIG)``); elsewhere a watchdog thread
  exits when the parent is gone. No process is left writing into the folder.
* No ``multiprocessing.Manager``: its server process outlived a killed parent. Progress
  goes through a plain queue that the workers inherit when they are forked.
* Ctrl-C reaches the whole process group; workers ignore it and the parent stops them,
  so the user sees one line, not a traceback per worker.
"""
import multiprocessing
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


def run_pool(func, items, workers, initializer=None, on_progress=None, on_done=None):
    """``[func(item, progress) for item in items]`` over ``workers`` forked processes,
    in completion order; ``progress.put(n)`` in a task calls ``on_progress(n)`` here."""
    context = multiprocessing.get_context(
        "fork" if "fork" in multiprocessing.get_all_start_methods() else None)
    progress = context.Queue()
    pool = context.Pool(workers, initializer=_init,
                        initargs=(os.getpid(), progress, initializer))
    results = []

    def drain():
        while True:
            try:
                n = progress.get_nowait()
            except queue_module.Empty:
                return
            if on_progress:
                on_progress(n)
    try:
        pending = pool.imap_unordered(_call, [(func, item) for item in items])
        remaining = len(items)
        while remaining:
            try:
                result = pending.next(timeout=0.2)
                results.append(result)
                remaining -= 1
                if on_done:
                    on_done(result)
            except multiprocessing.TimeoutError:
                pass
            drain()
        pool.close()
    except BaseException:
        pool.terminate()
        raise
    finally:
        pool.join()
        drain()
        progress.close()
    return results
