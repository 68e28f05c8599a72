"""Integrity where data is consumed: training checks every shard against its manifest.

The check reads each shard once, sequentially, in a background thread while the graph
is built and the first steps run (it also warms the page cache for the reader). The
trainer asks :meth:`ShardVerifier.check` after every step and waits for the whole check
before it writes any checkpoint, so no checkpoint is ever saved from a damaged folder:
a damaged, truncated or missing shard stops the run with one line naming it and the fix.
"""
import os
import threading

from hgpipe.data import shards


class ShardVerifier(object):
    """Checks every shard listed in the manifest, in a daemon thread."""

    def __init__(self, shards_dir, manifest=None):
        self.shards_dir = shards_dir
        self.manifest = manifest or shards.load_manifest(shards_dir)
        self.problem = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="verify-shards")
        self._thread.daemon = True
        self._thread.start()

    def _run(self):
        damaged = []
        for entry in self.manifest["shards"]:
            if self._stop.is_set():
                return
            path = os.path.join(self.shards_dir, entry["file"])
            try:
                problem = shards.shard_problem(self.shards_dir, entry, self.manifest)
            except (IOError, OSError) as exc:
                problem = "cannot be read (%s)" % (exc.strerror or exc)
            except Exception as exc:  # noqa: BLE001 - any error is this shard's problem:
                # one escaping this thread would print a thread traceback and leave
                # self.problem unset, so the run would go on and save a checkpoint
                problem = _problem_of(path, exc)
            if problem:
                damaged.append((path, problem))
        if damaged:
            self.problem = shards.damage_message(damaged)

    @property
    def done(self):
        return not self._thread.is_alive()

    def check(self, wait=False):
        """Raise ShardError if a damaged shard was found (``wait``: finish checking first)."""
        if wait:
            self._thread.join()
        if self.problem:
            raise shards.ShardError(self.problem)

    def close(self, timeout=120):
        """Stop checking and wait for the thread to leave the shard it is on.

        Why wait: a daemon thread still inside h5py when the interpreter exits holds
        h5py's global lock while finalisation frees h5py's objects, which need that
        lock: the process hung after printing its line, or crashed (SIGSEGV) on exit
        (tests/test_train_fuzz.py). The thread stops between shards, so this waits for
        one shard's check at most (``timeout`` is only a guard against a stuck disk)."""
        self._stop.set()
        if self._thread is not threading.current_thread():
            self._thread.join(timeout)


def _problem_of(path, exc):
    """The text of ``exc`` as one problem of the shard at ``path`` (without its name)."""
    lines = str(exc).strip().splitlines()
    text = lines[0][:300] if lines else type(exc).__name__
    if text.startswith(path + ": "):
        text = text[len(path) + 2:]
    if not isinstance(exc, shards.ShardError):
        text = "cannot be checked (%s: %s)" % (type(exc).__name__, text)
    return text
