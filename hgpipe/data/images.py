"""Finding and decoding dataset images, with errors that name the file."""
import os

import cv2
import numpy as np


class ImageError(ValueError):
    """An image file is missing, unreadable or not a decodable image."""


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


def decode_image(path):
    """BGR uint8 image; raises ImageError naming the file when it cannot be decoded."""
    try:
        data = np.fromfile(path, dtype=np.uint8)
    except (IOError, OSError) as exc:
        raise ImageError("%s: cannot read: %s" % (path, exc.strerror or exc))
    if data.size == 0:
        raise ImageError("%s: empty file" % path)
    image = cv2.imdecode(data, cv2.IMREAD_COLOR)
    if image is None:
        raise ImageError("%s: not a decodable image (corrupt or unsupported format)" % path)
    return image
