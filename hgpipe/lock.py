"""One writer per folder: an OS-level lock that names its holder.

``train`` holds its logdir and ``prepare`` its ``--out`` folder for the whole run, so two
runs started on one folder cannot overwrite each other's checkpoints, ``config.ini`` or
shards: the second one stops at once with one line naming the first (pid, host, command).

The lock is ``fcntl.flock`` on ``FOLDER/.hgpipe.lock``. The kernel releases it when its
holder exits however it exits (kill -9 included), so a lock left by a dead process is
simply taken over; the file's text (pid, host, command, start time) is only there for the
message. The file is never deleted: deleting it would let a third process lock a new file
while a second still holds the old one.
"""
import contextlib
import errno
import json
import os
import socket
import sys
import time

from hgpipe.atomic import ensure_dir

try:
    import fcntl
except ImportError:  # not POSIX: no lock (hgpipe's platforms are Linux and macOS)
    fcntl = None

LOCK_FILE = ".hgpipe.lock"


class FolderLockedError(ValueError):
    """Another live process writes to this folder."""


def _holder_text(command):
    return json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                       "command": command or " ".join(["hgpipe"] + sys.argv[1:]),
                       "since": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())})


def _describe_holder(handle):
    try:
        os.lseek(handle, 0, os.SEEK_SET)
        holder = json.loads(os.read(handle, 65536).decode("utf-8"))
        return "pid %s on %s, '%s', since %s" % (holder["pid"], holder["host"],
                                                 holder["command"], holder["since"])
    except (ValueError, KeyError, OSError):
        return "holder unknown"


@contextlib.contextmanager
def folder_lock(folder, command=None):
    """Hold ``folder`` (created if needed) for this process, or raise FolderLockedError."""
    ensure_dir(folder)
    if fcntl is None:
        yield
        return
    path = os.path.join(folder, LOCK_FILE)
    handle = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except (IOError, OSError) as exc:
            if exc.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                raise
            raise FolderLockedError(
                "%s: in use by another hgpipe run (%s); wait for it to finish or use "
                "another folder" % (folder, _describe_holder(handle)))
        os.ftruncate(handle, 0)
        os.lseek(handle, 0, os.SEEK_SET)
        os.write(handle, (_holder_text(command) + "\n").encode("utf-8"))
        yield
    finally:
        os.close(handle)  # releases the lock
