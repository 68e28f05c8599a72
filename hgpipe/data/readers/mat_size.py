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
by the readers) and top-level tags that make no sense are left to scipy, which refuses
them.

Inside a variable, scipy's C reader trusts the tags: a data element of an unknown type
(one flipped byte of ``miDOUBLE``'s tag) or one that declares more bytes than its
variable holds crashed the process (a segmentation fault, tests/test_fuzz_inputs.py's
LSP cases), where no Python exception can be caught. So each ``miMATRIX`` variable (as
stored, or inflated when it inflates to at most :data:`WALKED_BYTES`) is walked first,
element by element and into nested cells and structs: every tag must name a MAT type
and fit inside its parent (:func:`structure_problem`).
"""
import os
import struct
import zlib

from hgpipe.limits import MAX_MAT_UNPACKED_BYTES, megabytes

MI_MATRIX = 14
MI_COMPRESSED = 15
HEADER_BYTES = 128
CHUNK = 1 << 20
WALKED_BYTES = 16 << 20     # variables larger than this (inflated) are left to scipy
MAX_DEPTH = 64              # nesting of cells / structs
# the MAT-File Format's data types (Table 1-1): miINT8 .. miUTF32, 8, 10, 11 reserved
MAT_TYPES = frozenset((1, 2, 3, 4, 5, 6, 7, 9, 12, 13, 14, 15, 16, 17, 18))


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


def structure_problem(buf, order, start=0, end=None, depth=0):
    """Why the data elements in ``buf[start:end]`` (a variable's, as scipy will read
    them) would mislead scipy's C reader, as text; None when every tag is sound."""
    end = len(buf) if end is None else end
    if depth > MAX_DEPTH:
        return "variables nested more than %d deep" % MAX_DEPTH
    pos = start
    while end - pos >= 8:
        mdtype, nbytes = struct.unpack(order + "II", buf[pos:pos + 8])
        if mdtype >> 16:  # small data element: type and size in the first 4 bytes
            if mdtype & 0xFFFF not in MAT_TYPES or mdtype >> 16 > 4:
                return "a data element's tag is damaged (type %d, %d bytes in a small "\
                       "element)" % (mdtype & 0xFFFF, mdtype >> 16)
            pos += 8
            continue
        if mdtype not in MAT_TYPES or (depth and mdtype == MI_COMPRESSED):
            return "a data element has an unknown type (%d)" % mdtype
        body = pos + 8
        if nbytes > end - body:
            return "a data element declares %d bytes where %d are left" % (nbytes, end - body)
        if mdtype == MI_MATRIX:
            problem = structure_problem(buf, order, body, body + nbytes, depth + 1)
            if problem:
                return problem
        pos = body + nbytes + (-nbytes % 8)
    return None


def _inflated(handle, nbytes, keep):
    """The inflated bytes of the zlib stream of ``nbytes`` at the handle's position
    (read in 1 MiB pieces), or None when it is damaged or inflates past ``keep`` bytes."""
    unpack = zlib.decompressobj()
    parts, total, left = [], 0, nbytes
    try:
        while left > 0 and not unpack.eof:
            data = handle.read(min(CHUNK, left))
            if not data:
                break
            left -= len(data)
            while data and not unpack.eof:
                chunk = unpack.decompress(data, CHUNK)
                total += len(chunk)
                if total > keep:
                    return None
                parts.append(chunk)
                data = unpack.unconsumed_tail
    except zlib.error:
        return None
    return b"".join(parts)


def _variable_problem(handle, mdtype, nbytes, stored, order):
    """:func:`structure_problem` of the top-level element at the handle's position (its
    tag just read; ``stored``: its bytes in the file), the position left after it."""
    start = handle.tell()
    problem = None
    if mdtype == MI_MATRIX:
        problem = structure_problem(handle.read(stored), order, depth=1)  # its body
        if problem is None and stored < nbytes:
            problem = "a variable declares %d bytes where the file holds %d" % (nbytes, stored)
    elif mdtype == MI_COMPRESSED:
        inflated = _inflated(handle, stored, WALKED_BYTES)
        problem = structure_problem(inflated, order) if inflated else None
    handle.seek(start + nbytes)
    return problem


def unpacked_size_problem(path, limit=MAX_MAT_UNPACKED_BYTES):
    """None when the v5 ``.mat`` at ``path`` holds at most ``limit`` bytes once its
    compressed elements are inflated and its variables' tags are sound
    (:func:`structure_problem`), else the problem as text for a one-line error.
    Reads the file in 1 MiB pieces, and holds at most one variable of up to
    :data:`WALKED_BYTES` (inflated) to walk it, whatever the file declares."""
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
            start = handle.tell()
            stored = min(nbytes, max(0, file_bytes - start))
            if mdtype == MI_COMPRESSED:
                size = _inflated_size(handle, nbytes, limit - total)
                if size is None:
                    return None
            else:  # read as stored: no more than the file holds
                size = stored
            total += size
            if total > limit:
                return ("unpacks to more than the %s a .mat file may hold (a compressed "
                        "variable inflates past it)" % megabytes(limit))
            handle.seek(start)
            problem = _variable_problem(handle, mdtype, nbytes, stored, order) \
                if size <= WALKED_BYTES else None
            if problem:
                return problem
