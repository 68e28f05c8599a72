"""How much a MATLAB v5 ``.mat`` file unpacks to, measured before scipy reads it.

A v7 ``.mat`` (MATLAB's default since 2006) stores each variable as a top-level
``miCOMPRESSED`` element: a zlib stream that ``scipy.io.loadmat`` inflates whole into
memory. The file size bounds nothing: a 1 MB element can inflate to a gigabyte. So
before scipy sees a file, :func:`unpacked_size_problem` walks its top-level element tags
(the 128-byte header, then ``mdtype`` / ``nbytes`` pairs: the MAT-File Format document,
"Data Element Format"; scipy reads the same tags in ``scipy/io/matlab/_mio5.py``
``read_var_header``) and inflates each compressed element in chunks of at most 1 MiB
(``zlib.decompressobj`` with ``max_length``), only counting, never keeping, what comes out.
Past :data:`hgpipe.limits.MAX_MAT_UNPACKED_BYTES` in all the file is refused in one line.

Files that are not v5 (a v4 file has no compression; a v7.3 file is HDF5 and refused
by the readers) and tags that make no sense are left to scipy, which refuses them.
"""
import os
import struct
import zlib

from hgpipe.limits import MAX_MAT_UNPACKED_BYTES, megabytes

MI_COMPRESSED = 15
HEADER_BYTES = 128
CHUNK = 1 << 20


def _inflated_size(handle, nbytes, budget):
    """Bytes the zlib stream of ``nbytes`` at the handle's position inflates to, counted
    up to ``budget + 1`` (then stops); None when the stream is damaged (scipy says so)."""
    unpack = zlib.decompressobj()
    total, left = 0, nbytes
    try:
        while left > 0 and not unpack.eof:
            data = handle.read(min(CHUNK, left))
            if not data:
                break
            left -= len(data)
            while data and not unpack.eof:
                total += len(unpack.decompress(data, CHUNK))
                if total > budget:
                    return total
                data = unpack.unconsumed_tail
    except zlib.error:
        return None
    return total


def unpacked_size_problem(path, limit=MAX_MAT_UNPACKED_BYTES):
    """None when the v5 ``.mat`` at ``path`` holds at most ``limit`` bytes once its
    compressed elements are inflated, else the problem as text for a one-line error.
    Reads the file in 1 MiB pieces; allocates no more than that whatever it declares."""
    with open(path, "rb") as handle:
        file_bytes = os.fstat(handle.fileno()).st_size
        header = handle.read(HEADER_BYTES)
        if len(header) < HEADER_BYTES or header[126:128] not in (b"IM", b"MI"):
            return None
        order = "<" if header[126:128] == b"IM" else ">"
        if struct.unpack(order + "H", header[124:126])[0] != 0x0100:
            return None  # a v7.3 (HDF5) file, refused by name elsewhere
        total = 0
        while True:
            tag = handle.read(8)
            if len(tag) < 8:
                return None
            mdtype, nbytes = struct.unpack(order + "II", tag)
            if mdtype >> 16:  # small data element: its 4 bytes are inside the tag
                continue
            if mdtype == MI_COMPRESSED:
                start = handle.tell()
                size = _inflated_size(handle, nbytes, limit - total)
                if size is None:
                    return None
                handle.seek(start + nbytes)
            else:  # read as stored: no more than the file holds
                size = min(nbytes, max(0, file_bytes - handle.tell()))
                handle.seek(nbytes, 1)
            total += size
            if total > limit:
                return ("unpacks to more than the %s a .mat file may hold (a compressed "
                        "variable inflates past it)" % megabytes(limit))
