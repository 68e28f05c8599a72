"""Finding and decoding dataset images, with errors that name the file."""
import os

import cv2
import numpy as np


class ImageError(ValueError):
    """An image file is missing, unreadable or not a decodable image; the message is
    ``PATH: PROBLEM``."""

    def __init__(self, path, problem):
        super(ImageError, self).__init__("%s: %s" % (path, problem))
        self.path, self.problem = path, problem

    def __reduce__(self):  # survives pickling (from a worker process) with both parts
        return ImageError, (self.path, self.problem)


class ImageLocator(object):
    """Resolves an annotation's image name inside a dataset's ``images/`` folder.

    MPII keeps every image flat in ``images/``; sub-folders (as in the few real images
    kept for tests, or a user's own split folders) are searched by file name, indexed
    once on first miss.
    """

    def __init__(self, images_dir):
        self.images_dir = images_dir
        self._index = None

    def _build_index(self):
        index = {}
        for root, _dirs, files in os.walk(self.images_dir):
            for name in files:
                index.setdefault(name, os.path.join(root, name))
        return index

    def find(self, image_name):
        """Path of the image, or None if it is not in the folder."""
        direct = os.path.join(self.images_dir, image_name)
        if os.path.isfile(direct):
            return direct
        if self._index is None:
            self._index = self._build_index()
        return self._index.get(os.path.basename(image_name))


# libjpeg decodes at 1/2, 1/4 or 1/8 size through its DCT, several times faster than a
# full decode, and the result is an area average (better than bilinear from full size)
_REDUCED_FLAGS = {1: cv2.IMREAD_COLOR, 2: cv2.IMREAD_REDUCED_COLOR_2,
                  4: cv2.IMREAD_REDUCED_COLOR_4, 8: cv2.IMREAD_REDUCED_COLOR_8}


def decode_image(path, reduction=1):
    """BGR uint8 image, optionally at 1/``reduction`` size (1, 2, 4 or 8); raises
    ImageError naming the file when it cannot be decoded.

    Reduced pixel ``r`` covers full-size pixels ``[f*r, f*r + f)``: its centre is the
    full-size (0-based) coordinate ``f*r + (f-1)/2``.
    """
    try:
        data = np.fromfile(path, dtype=np.uint8)
    except (IOError, OSError) as exc:
        raise ImageError(path, "cannot read: %s" % (exc.strerror or exc))
    if data.size == 0:
        raise ImageError(path, "empty file")
    image = cv2.imdecode(data, _REDUCED_FLAGS[reduction])
    if image is None:
        raise ImageError(path, "not a decodable image (corrupt or unsupported format)")
    return image
