"""What ``hgpipe predict`` reads and writes besides the model: image files, folders,
videos (OpenCV's VideoCapture / VideoWriter) and the annotated video.

Inputs are expanded and checked before the model loads (a path that does not exist is
one line, nothing done). A file that exists but cannot be decoded is not checked here:
it fails when its frames are read, and the caller skips it with its reason.
"""
import os
from typing import NamedTuple

import cv2

from hgpipe.atomic import ensure_dir
from hgpipe.data.images import ImageError, decode_image

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".ppm",
                    ".pgm", ".jp2")
VIDEO_EXTENSIONS = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg",
                    ".wmv")


class Source(NamedTuple):
    """One input file: an image (one frame) or a video (its frames, in order)."""
    path: str
    kind: str  # "image" or "video"


class Frame(NamedTuple):
    """One decoded frame: BGR uint8, its source and its 0-based index (None: an image)."""
    source: Source
    index: object
    image: object

    @property
    def name(self):
        """``photo.jpg`` for an image, ``clip.mp4#12`` for frame 12 of a video."""
        if self.index is None:
            return self.source.path
        return "%s#%d" % (self.source.path, self.index)


def kind_of(path):
    ext = os.path.splitext(path)[1].lower()
    if ext in VIDEO_EXTENSIONS:
        return "video"
    return "image" if ext in IMAGE_EXTENSIONS else None


def expand_inputs(paths):
    """Files and folders -> Sources. A folder gives its images and videos (sub-folders
    included), sorted by path; a file is taken whatever its extension (as an image,
    unless the extension is a video's). Raises ValueError for a path that does not
    exist or a folder with nothing to predict."""
    sources = []
    for path in paths:
        path = os.fspath(path)
        if os.path.isdir(path):
            found = []
            for root, dirs, files in os.walk(path):
                dirs.sort()
                for name in sorted(files):
                    full = os.path.join(root, name)
                    if kind_of(full) and not name.startswith("."):
                        found.append(Source(full, kind_of(full)))
            if not found:
                raise ValueError("%s: no images or videos in this folder (extensions: %s)"
                                 % (path, " ".join(IMAGE_EXTENSIONS + VIDEO_EXTENSIONS)))
            sources += found
        elif os.path.isfile(path):
            sources.append(Source(path, kind_of(path) or "image"))
        else:
            raise ValueError("%s: no such image, video or folder" % path)
    return sources


def frame_count(source):
    """Frames in a source as its container says (1 for an image; 0 when unknown)."""
    if source.kind == "image":
        return 1
    capture = cv2.VideoCapture(source.path)
    try:
        return max(0, int(capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0))
    finally:
        capture.release()


def video_fps(source, default=25.0):
    capture = cv2.VideoCapture(source.path)
    try:
        fps = float(capture.get(cv2.CAP_PROP_FPS) or 0)
    finally:
        capture.release()
    return fps if fps > 0 else default


def read_frames(source):
    """Yield the Frames of a source; raises ImageError naming the file when it cannot be
    decoded (an image) or opened (a video). A video that ends early (truncated) simply
    ends: the frames decoded so far are kept."""
    if source.kind == "image":
        yield Frame(source, None, decode_image(source.path))
        return
    capture = cv2.VideoCapture(source.path)
    try:
        if not capture.isOpened():
            raise ImageError(source.path, "not a readable video (OpenCV could not open it)")
        index = 0
        while True:
            ok, image = capture.read()
            if not ok or image is None:
                break
            yield Frame(source, index, image)
            index += 1
        if index == 0:
            raise ImageError(source.path, "not a readable video (no frame could be decoded)")
    finally:
        capture.release()


class VideoOutput(object):
    """An annotated video written under a hidden temporary name (same extension, which
    OpenCV needs to pick the container) and renamed when closed complete: a run that
    fails half-way leaves no video that looks whole."""

    FOURCC = {".mp4": "mp4v", ".m4v": "mp4v", ".mov": "mp4v", ".avi": "MJPG",
              ".mkv": "MJPG"}

    def __init__(self, path, fps):
        self.path, self.fps = path, fps
        directory, name = os.path.split(os.path.abspath(path))
        ensure_dir(directory)
        ext = os.path.splitext(name)[1].lower()
        self.fourcc = self.FOURCC.get(ext, "mp4v")
        self.tmp = os.path.join(directory, ".%s.tmp%s" % (name, ext))
        self.writer = None
        self.frames = 0

    def write(self, image_bgr):
        if self.writer is None:
            height, width = image_bgr.shape[:2]
            self.writer = cv2.VideoWriter(self.tmp, cv2.VideoWriter_fourcc(*self.fourcc),
                                          self.fps, (width, height))
            if not self.writer.isOpened():
                self.writer = None
                raise ValueError("%s: OpenCV cannot write this video format (%s)"
                                 % (self.path, self.fourcc))
        self.writer.write(image_bgr)
        self.frames += 1

    def close(self, complete=True):
        """Finish the file: renamed to ``path`` if ``complete``, else removed."""
        if self.writer is not None:
            self.writer.release()
            self.writer = None
        if complete and self.frames and os.path.exists(self.tmp):
            os.replace(self.tmp, self.path)
        elif os.path.exists(self.tmp):
            os.remove(self.tmp)
