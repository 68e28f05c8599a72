"""What the machine itself allows: one-core pinning, a cold page cache, memory bandwidth.

These are the controls that make the other numbers comparable: "per core" means the
process is pinned to one CPU while it is measured; "cold" means the shard files were
really pushed out of the page cache (checked page by page with ``mincore``, not assumed);
the memory-copy bandwidth is the ceiling no reader that copies bytes can beat, and
the disk's sequential read rate the ceiling of any read from a cold cache.
"""
import contextlib
import ctypes
import ctypes.util
import mmap
import os
import time

import numpy as np

DROP_CACHES = "/proc/sys/vm/drop_caches"


def _cpu_idle_ticks():
    """{cpu: idle + iowait ticks} from /proc/stat (empty where there is none)."""
    ticks = {}
    try:
        with open("/proc/stat") as stat:
            for line in stat:
                name = line.split(" ", 1)[0]
                if name.startswith("cpu") and name[3:].isdigit():
                    fields = line.split()
                    ticks[int(name[3:])] = int(fields[4]) + int(fields[5])
    except (IOError, OSError, IndexError, ValueError):
        pass
    return ticks


def idlest_cpu(candidates, sample_seconds=0.1):
    """The CPU among ``candidates`` that was idle the longest over a short sample.

    On a machine shared with other users, pinning to a fixed CPU can put the bench on
    the one core someone else saturates; this picks the quieter one.
    """
    before = _cpu_idle_ticks()
    time.sleep(sample_seconds)
    after = _cpu_idle_ticks()
    idle = {cpu: after.get(cpu, 0) - before.get(cpu, 0) for cpu in candidates}
    return max(sorted(candidates), key=lambda cpu: idle[cpu])


@contextlib.contextmanager
def one_core():
    """Pin the calling thread (and threads it starts) to one CPU; restore afterwards.

    Yields the CPU number, or None where affinity cannot be set (then nothing is pinned).
    """
    getter = getattr(os, "sched_getaffinity", None)
    setter = getattr(os, "sched_setaffinity", None)
    if getter is None or setter is None:
        yield None
        return
    previous = getter(0)
    cpu = idlest_cpu(previous)
    setter(0, {cpu})
    try:
        yield cpu
    finally:
        setter(0, previous)


def cpu_seconds():
    """CPU time (user + system) of this process and of its reaped children so far.

    Dividing work by the difference of two readings gives a rate per CPU-second, which
    other users' load on a shared machine does not change (wall-clock rates it does).
    """
    times = os.times()
    return time.process_time() + times[2] + times[3]


def per_cpu_rate(amount, cpu, shortest=0.02):
    """``amount`` per CPU-second, or None when too little CPU time was used to tell."""
    return amount / cpu if cpu >= shortest else None


def usable_cores():
    getter = getattr(os, "sched_getaffinity", None)
    return len(getter(0)) if getter else (os.cpu_count() or 1)


def _libc():
    name = ctypes.util.find_library("c")
    libc = ctypes.CDLL(name, use_errno=True)
    libc.mmap.restype = ctypes.c_void_p
    libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int,
                          ctypes.c_int, ctypes.c_long]
    libc.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p]
    libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
    return libc


def resident_fraction(paths):
    """Fraction of the files' pages in the page cache (mincore), or None if unknowable."""
    try:
        libc = _libc()
        page = mmap.PAGESIZE
        resident = total = 0
        for path in paths:
            size = os.path.getsize(path)
            if size == 0:
                continue
            fd = os.open(path, os.O_RDONLY)
            try:
                address = libc.mmap(None, size, mmap.PROT_READ, mmap.MAP_SHARED, fd, 0)
                if address in (None, ctypes.c_void_p(-1).value):
                    return None
                pages = (size + page - 1) // page
                vector = (ctypes.c_ubyte * pages)()
                status = libc.mincore(ctypes.c_void_p(address), size, vector)
                libc.munmap(ctypes.c_void_p(address), size)
                if status != 0:
                    return None
                resident += int(np.count_nonzero(np.frombuffer(vector, np.uint8) & 1))
                total += pages
            finally:
                os.close(fd)
        return resident / float(total) if total else 0.0
    except (AttributeError, OSError, TypeError):
        return None


def _fadvise_dontneed(paths):
    for path in paths:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)  # dirty pages cannot be dropped: write them back first
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def _drop_all_caches():
    os.sync()
    with open(DROP_CACHES, "w") as out:
        out.write("1\n")


def evict_from_page_cache(paths, good_enough=0.05):
    """Push the files out of the page cache; returns (method that worked, resident after).

    Tries ``posix_fadvise(POSIX_FADV_DONTNEED)`` on each file first (touches nothing
    else on a shared machine), then, if pages stayed resident and we may, writing to
    ``/proc/sys/vm/drop_caches``. Method "none" means the reads that follow are warm.
    """
    tried = []
    if hasattr(os, "posix_fadvise"):
        try:
            _fadvise_dontneed(paths)
            resident = resident_fraction(paths)
            if resident is None:
                return "posix_fadvise(DONTNEED), unverified", None
            if resident <= good_enough:
                return "posix_fadvise(DONTNEED)", resident
            tried.append("posix_fadvise left %.0f%% resident" % (100 * resident))
        except OSError as exc:
            tried.append("posix_fadvise failed: %s" % exc)
    try:
        _drop_all_caches()
        resident = resident_fraction(paths)
        if resident is None or resident <= good_enough:
            return "drop_caches", resident
        tried.append("drop_caches left %.0f%% resident" % (100 * resident))
    except (IOError, OSError) as exc:
        tried.append("drop_caches: %s" % (exc.strerror or exc))
    return "none (%s)" % "; ".join(tried), resident_fraction(paths)


def _read_all(paths, block=1 << 24):
    """Read the files front to back in ``block``-byte reads; returns the bytes read."""
    buffer, total = bytearray(block), 0
    for path in paths:
        with open(path, "rb", buffering=0) as handle:
            while True:
                got = handle.readinto(buffer)
                if not got:
                    break
                total += got
    return total


def warm_page_cache(paths, block=1 << 24):
    """Read the files once so that the next reads come from memory."""
    _read_all(paths, block)


def disk_read_bandwidth(paths, repeats=3):
    """The disk's own rate: best bytes/s of reading the files once, front to back, in
    16 MB reads, each run after evicting them (the kernel reads ahead: the sequential
    ceiling). A cold feed has to bring every sample's bytes in from the disk, so this
    is its physical limit, as memory-copy bandwidth is the warm feed's.

    Returns (bytes/s, how the files were evicted before the best run)."""
    best, best_method = 0.0, ""
    for _ in range(max(1, repeats)):
        method, _resident = evict_from_page_cache(paths)
        start = time.perf_counter()
        rate = _read_all(paths) / (time.perf_counter() - start)
        if rate > best:
            best, best_method = rate, method
    return best, best_method


def memcpy_bandwidth(nbytes, repeats=5):
    """Best bytes/s of a large numpy copy (pages touched first, so no page faults timed)."""
    source = np.ones(int(nbytes), dtype=np.uint8)
    target = np.empty_like(source)
    np.copyto(target, source)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        np.copyto(target, source)
        best = min(best, time.perf_counter() - start)
    return source.nbytes / best


def physical_memory_bytes():
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return None


def load_average():
    try:
        return list(os.getloadavg())
    except (AttributeError, OSError):
        return None
