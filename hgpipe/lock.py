"""One writer per folder: an OS-level lock that names its holder.

``train`` holds its logdir and ``prepare`` its ``--out`` folder for the whole run, so two
runs started on one folder cannot overwrite each other's checkpoints, ``config.ini`` or
shards: the second one stops at once with one line naming the first (pid, host, command).

The lock is ``fcntl.flock`` on ``FOLDER/.hgpipe.lock``. The kernel releases it when its
holder exits however it exits (kill -9 included), so a lock left by a dead process is
simply taken over; the file's text (pid, host, command, start time) is only there for the
message. The file is never deleted: deleting it would let a third process lock a new file
while a second still holds the old one.

The lock file is opened with ``O_NOFOLLOW`` and must be a regular file: the folder may be
shared, and a symlink planted there as ``.hgpipe.lock`` would otherwise make this run
truncate and overwrite whatever file it points to (a FIFO would block the open, hence
``O_NONBLOCK``; a device or socket is refused as well).
"""
import contextlib
import errno
import json
import os
import socket
import stat
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


class LockFileError(ValueError):
    """The folder's lock file is a symlink, a folder or anything but a regular file."""


def _open_lock_file(path):
    """A handle on the regular file ``path`` (created if absent), never through a link."""
    flags = os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | \
        getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    problem = "is a symlink or not a regular file; remove it (hgpipe never follows it)"
    try:
        handle = os.open(path, flags, 0o666)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.EISDIR, errno.ENXIO, errno.EMLINK):
            raise LockFileError("%s: %s" % (path, problem))
        raise
    if not stat.S_ISREG(os.fstat(handle).st_mode):
        os.close(handle)
        raise LockFileError("%s: %s" % (path, problem))
    return handle


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
    handle = _open_lock_file(path)
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
