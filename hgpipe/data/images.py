"""Finding and decoding dataset images, with errors that name the file.

Both steps distrust the annotation and the image file: a name in the annotation is
only looked up inside the images folder (``../x.jpg``, absolute names and symlinks that
lead out are refused), and an image's declared size is read from its header and checked
against :mod:`hgpipe.limits` before OpenCV allocates anything.
"""
import os
import struct

import cv2
import numpy as np

from hgpipe.limits import MAX_IMAGE_FILE_BYTES, MAX_IMAGE_PIXELS, megabytes
from hgpipe.native_stderr import captured_decoder_lines


class ImageError(ValueError):
    """An image file is missing, unreadable or not a decodable image; the message is
    ``PATH: PROBLEM``."""

    def __init__(self, path, problem):
        super(ImageError, self).__init__("%s: %s" % (path, problem))
        self.path, self.problem = path, problem

    def __reduce__(self):  # survives pickling (from a worker process) with both parts
        return type(self), (self.path, self.problem)


class ImageOutsideError(ImageError):
    """An annotation's image name, or a symlink it names, leads outside the images folder."""


class ImageNameError(ImageError):
    """An annotation's image name cannot name a file (a NUL byte, not valid UTF-8)."""


def _is_inside(path, roots):
    return any(path == root or path.startswith(root + os.sep) for root in roots)


class ImageLocator(object):
    """Resolves an annotation's image name inside a dataset's ``images/`` folder.

    MPII keeps every image flat in ``images/``; sub-folders (as in the few real images
    kept for tests, or a user's own split folders) are searched by file name, indexed
    once on first miss. The annotation comes from whoever made the dataset: an absolute
    name or one with a ``..`` part is refused (:class:`ImageOutsideError`), and so is a
    file whose real path (symlinks resolved) is outside ``roots`` (by default the images
    folder itself; the bench adds the folder its symlinked copies point into).
    """

    def __init__(self, images_dir, roots=None):
        self.images_dir = images_dir
        self._roots = [os.path.realpath(root) for root in (roots or [images_dir])]
        self._index = None

    def _build_index(self):
        index = {}
        for root, _dirs, files in os.walk(self.images_dir):
            for name in files:
                index.setdefault(name, os.path.join(root, name))
        return index

    def _check_name(self, image_name):
        if "\0" in image_name:
            raise ImageNameError(repr(image_name), "image name holds a NUL byte")
        try:
            image_name.encode("utf-8")
        except UnicodeEncodeError:
            raise ImageNameError(image_name.encode("utf-8", "replace").decode("utf-8"),
                                 "image name is not valid UTF-8")
        parts = image_name.replace("\\", "/").split("/")
        if os.path.isabs(image_name) or ".." in parts:
            raise ImageOutsideError(image_name, "image name leads outside %s (an absolute "
                                    "path or a '..' part)" % self.images_dir)

    def _contained(self, path):
        if not _is_inside(os.path.realpath(path), self._roots):
            raise ImageOutsideError(path, "a symlink leading outside %s" % self.images_dir)
        return path

    def find(self, image_name):
        """Path of the image, or None if it is not in the folder; raises
        :class:`ImageOutsideError` or :class:`ImageNameError` (both ImageErrors) for a
        name that leads out of the folder or cannot name a file."""
        self._check_name(image_name)
        direct = os.path.join(self.images_dir, image_name)
        if os.path.isfile(direct):
            return self._contained(direct)
        if self._index is None:
            self._index = self._build_index()
        found = self._index.get(os.path.basename(image_name))
        return None if found is None else self._contained(found)


# libjpeg decodes at 1/2, 1/4 or 1/8 size through its DCT, several times faster than a
# full decode, and the result is an area average (better than bilinear from full size)
_REDUCED_FLAGS = {1: cv2.IMREAD_COLOR, 2: cv2.IMREAD_REDUCED_COLOR_2,
                  4: cv2.IMREAD_REDUCED_COLOR_4, 8: cv2.IMREAD_REDUCED_COLOR_8}

_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
# JPEG start-of-frame markers (every coding process); C4, C8 and CC are not frames
_JPEG_SOF = set(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
_JPEG_NO_LENGTH = set(range(0xD0, 0xD8)) | {0x01, 0xD8}


def _jpeg_size(data):
    """(width, height) from a JPEG's first frame header, or None if it has none."""
    pos, end = 2, len(data)
    while pos + 4 <= end:
        if data[pos] != 0xFF:
            return None
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker in _JPEG_NO_LENGTH:
            pos += 2
            continue
        if marker in (0xD9, 0xDA):  # end of image, or scan data before any frame
            return None
        length = (data[pos + 2] << 8) | data[pos + 3]
        if marker in _JPEG_SOF:
            if length < 7 or pos + 9 > end:
                return None
            height, width = struct.unpack(">HH", data[pos + 5:pos + 9])
            return width, height
        if length < 2:
            return None
        pos += 2 + length
    return None


def _jpeg_first_scan(data):
    """Offset of the main image's first start-of-scan marker, or None if it has none
    (segments are skipped by their lengths, so an EXIF thumbnail inside APP1 is not
    mistaken for the image)."""
    pos, end = 2, len(data)
    while pos + 4 <= end:
        if data[pos] != 0xFF:
            return None
        marker = data[pos + 1]
        if marker == 0xFF:
            pos += 1
        elif marker in _JPEG_NO_LENGTH:
            pos += 2
        elif marker == 0xDA:
            return pos
        elif marker == 0xD9:
            return None
        else:
            length = (data[pos + 2] << 8) | data[pos + 3]
            if length < 2:
                return None
            pos += 2 + length
    return None


def _check_jpeg_complete(path, data):
    """A JPEG cut short (a partial download or copy) has no end-of-image marker after
    its scan data (entropy-coded data never holds FF D9). libjpeg would fill the missing
    rows with grey, and whether OpenCV hands that image back or None depends on its
    version, so hgpipe refuses it the same way everywhere."""
    scan = _jpeg_first_scan(data)
    if scan is None:
        raise ImageError(path, "not a decodable image (JPEG without image data)")
    if data.rfind(b"\xff\xd9") < scan:
        raise ImageError(path, "truncated JPEG (the file ends before its end-of-image "
                         "marker)")


def declared_size(data):
    """From an image file's bytes: (format, width, height) an image's header declares, read without decoding;
    (format, None, None) when the header gives no size, or None for a format other than
    JPEG, PNG and BMP (the ones whose size can be read before decoding)."""
    head = data[:32]
    if head.startswith(_PNG_MAGIC):
        if len(head) < 24 or head[12:16] != b"IHDR":
            return "PNG", None, None
        width, height = struct.unpack(">II", head[16:24])
        return "PNG", width, height
    if head.startswith(b"\xff\xd8"):
        size = _jpeg_size(data)
        return ("JPEG",) + (size or (None, None))
    if head.startswith(b"BM") and len(head) >= 26:
        header_size = struct.unpack("<I", head[14:18])[0]
        if header_size == 12:
            width, height = struct.unpack("<HH", head[18:22])
        else:
            width, height = struct.unpack("<ii", head[18:26])
        return "BMP", abs(width), abs(height)
    return None


def _check_declared(path, data):
    declared = declared_size(data)
    if declared is None:
        raise ImageError(path, "not a JPEG, PNG or BMP image")
    kind, width, height = declared
    if not width or not height:
        raise ImageError(path, "not a decodable image (%s header without an image size)"
                         % kind)
    if width * height > MAX_IMAGE_PIXELS:
        raise ImageError(path, "declares %d x %d pixels, more than the %d megapixels "
                         "hgpipe decodes" % (width, height, MAX_IMAGE_PIXELS // 10 ** 6))


def read_image_bytes(path):
    """The bytes of an image file, refusing one larger than the bound before reading
    (a sparse file may report gigabytes it does not store)."""
    try:
        with open(path, "rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            if size > MAX_IMAGE_FILE_BYTES:
                raise ImageError(path, "file of %d bytes, larger than the %s an image may "
                                 "be" % (size, megabytes(MAX_IMAGE_FILE_BYTES)))
            data = handle.read(MAX_IMAGE_FILE_BYTES + 1)
    except (IOError, OSError) as exc:
        raise ImageError(path, "cannot read: %s" % (exc.strerror or exc))
    if len(data) > MAX_IMAGE_FILE_BYTES:  # grew while being read
        raise ImageError(path, "larger than the %s an image may be"
                         % megabytes(MAX_IMAGE_FILE_BYTES))
    return data


def decode_image(path, reduction=1):
    """BGR uint8 image, optionally at 1/``reduction`` size (1, 2, 4 or 8); raises
    ImageError naming the file when it cannot be decoded or declares more pixels or
    bytes than :mod:`hgpipe.limits` allows.

    An image the decoding library reports damaged data in (libjpeg's "Corrupt JPEG
    data: ...", a libpng warning) is refused even when it decodes, and so is a JPEG
    cut short: what was lost was filled in by guesswork. The library's own lines never
    reach stderr; the ImageError says what they said.

    Reduced pixel ``r`` covers full-size pixels ``[f*r, f*r + f)``: its centre is the
    full-size (0-based) coordinate ``f*r + (f-1)/2``.
    """
    data = read_image_bytes(path)
    if not data:
        raise ImageError(path, "empty file")
    _check_declared(path, data)
    if data.startswith(b"\xff\xd8"):
        _check_jpeg_complete(path, data)
    failure = None
    with captured_decoder_lines() as library_lines:
        try:
            image = cv2.imdecode(np.frombuffer(data, dtype=np.uint8),
                                 _REDUCED_FLAGS[reduction])
        except cv2.error as exc:
            image, failure = None, (str(exc).strip().splitlines() or ["OpenCV error"])[-1]
    said = "; ".join(line[:200] for line in library_lines[:2])
    if image is None:
        raise ImageError(path, "not a decodable image (%s)" % (
            failure or said or "corrupt or unsupported format"))
    if library_lines:  # decoded, but from damaged data: libjpeg guessed what was lost
        raise ImageError(path, "damaged image data (%s)" % said)
    return image
