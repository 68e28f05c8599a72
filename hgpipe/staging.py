"""Staging folders: an output folder is written beside its destination, then renamed.

A SavedModel is a folder, and a folder cannot be replaced atomically like a file
(:mod:`hgpipe.atomic`), so it is written whole into a hidden staging folder beside its
destination and renamed into place; an interrupted job never leaves a half-written
folder under the final name. A writer that is killed (kill -9, a crash, power loss)
leaves its staging folder behind, and without a rule nothing would ever remove it.

The rule: a staging folder is held by its writer with ``flock`` on the folder itself
for as long as it lives (the kernel drops the lock when the process ends, however it
ends). Before making a new one, :func:`staging_folder` removes every staging folder of
the same kind that no live process holds: a concurrent writer's folder is locked and
stays. Making a folder and locking it happen under a ``flock`` on the parent folder,
which the clean-up holds too, so a folder that was just made and not yet locked is
never taken for a stale one. Staging folders get ordinary permissions (0777 less the
umask), not ``mkdtemp``'s private 0700, so what is renamed out of them is readable as
any other output.
"""
import contextlib
import errno
import os
import shutil
import tempfile

from hgpipe.atomic import ensure_dir

try:
    import fcntl
except ImportError:  # not POSIX: no locks, no clean-up (hgpipe runs on Linux and macOS)
    fcntl = None

_BUSY = (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK)


def _open_folder(path):
    flags = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_NOFOLLOW", 0)
    return os.open(path, flags)


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def _holding(path, blocking):
    """Yield True while this process holds ``flock`` on folder ``path``; False if another
    process holds it (``blocking`` False) or the file system has no locks."""
    try:
        handle = _open_folder(path)
    except OSError:
        yield False
        return
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
        except (IOError, OSError) as exc:
            if exc.errno not in _BUSY and exc.errno not in (errno.ENOLCK, errno.EINVAL,
                                                            errno.EOPNOTSUPP):
                raise
            yield False
            return
        yield True
    finally:
        os.close(handle)


def remove_stale(parent, prefix):
    """Remove the ``prefix*`` staging folders in ``parent`` that no live process holds;
    returns their names. Call with the parent's lock held (see :func:`staging_folder`)."""
    removed = []
    for name in sorted(os.listdir(parent)):
        path = os.path.join(parent, name)
        if not name.startswith(prefix) or os.path.islink(path) or not os.path.isdir(path):
            continue
        with _holding(path, blocking=False) as held:
            if held:  # its writer is gone
                shutil.rmtree(path, ignore_errors=True)
                removed.append(name)
    return removed


@contextlib.contextmanager
def staging_folder(parent, prefix, on_removed=None):
    """Yield a new empty folder ``parent/prefixXXXXXX``, held by this process until the
    block ends, then removed with whatever is still in it. Stale ones of dead writers
    are removed first, each name passed to ``on_removed``."""
    ensure_dir(parent)
    if fcntl is None:
        staging = tempfile.mkdtemp(prefix=prefix, dir=parent)
        try:
            yield staging
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return
    with _holding(parent, blocking=True) as parent_held:
        for name in remove_stale(parent, prefix) if parent_held else ():
            if on_removed is not None:
                on_removed(name)
        staging = tempfile.mkdtemp(prefix=prefix, dir=parent)
        os.chmod(staging, 0o777 & ~_umask())
        handle = _open_folder(staging)
        fcntl.flock(handle, fcntl.LOCK_EX)  # nobody else knows it yet: never blocks
    try:
        yield staging
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        os.close(handle)
