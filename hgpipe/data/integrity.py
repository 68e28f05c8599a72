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
            try:
                problem = shards.shard_problem(self.shards_dir, entry, self.manifest)
            except (IOError, OSError) as exc:
                problem = "cannot be read (%s)" % (exc.strerror or exc)
            if problem:
                damaged.append((os.path.join(self.shards_dir, entry["file"]), problem))
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

    def close(self):
        self._stop.set()
