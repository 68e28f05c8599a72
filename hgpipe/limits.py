"""Bounds on what a user's file may declare, checked before anything is allocated.

A file can declare far more than it holds: a 74-byte PNG says 60000 x 60000 pixels
(a 10 GB decode), an 8 GB gzip stream unpacks from a few MB, a sparse file reports 6 GB
that np.fromfile would read. Readers compare what a file declares with these numbers
first and refuse with one line naming the file, so a hostile or broken input never
exhausts the machine. The numbers leave room far beyond real data:

* MPII's largest image is 1920 x 1080 (2.07 megapixels, the maximum of ``img_width x
  img_height`` over the 25,204 persons of ``mpii_annotations.json.gz``), its largest
  image file here under 1 MB. 50 megapixels (24x that; a 48 MP phone photo fits) decodes
  to 150 MB of BGR; 128 MiB of file holds any such JPEG or PNG.
* The largest annotation file is the JSON conversion of MPII: 33.2 MB unpacked (3.5 MB
  gzipped), about 370 MB resident once parsed. 256 MiB (8x) bounds a file and the
  unpacked size of a ``.gz``, so parsing stays within a few GB.
* A ``.mat`` file's compressed variables are inflated whole by scipy; the file size
  bounds nothing (zeros deflate 1000:1). ``val/detections.mat``, the official layout for
  MPII's 2,958 val persons, is 1.76 MB on disk and 14.9 MB inflated (its ``annolist``
  14.05 MB). The official ``mpii_human_pose_v1_u12_1.mat`` holds 24,987 images and about
  40,000 person rects, some 14x as many records: about 210 MB inflated. 1 GiB (5x that)
  bounds what a ``.mat`` may inflate to (:mod:`hgpipe.data.readers.mat_size`).
* JSON nesting: MPII's annotations nest 4 deep; Python's parser recurses per level and
  fails with RecursionError past ~1000, which readers turn into one line.
"""

MAX_IMAGE_PIXELS = 50 * 1000 * 1000
MAX_IMAGE_FILE_BYTES = 128 * 1024 * 1024
MAX_ANNOTATION_BYTES = 256 * 1024 * 1024
MAX_MAT_UNPACKED_BYTES = 1024 * 1024 * 1024


def megabytes(n):
    """``n`` bytes as text for messages ("256 MiB")."""
    if n >= 1024 ** 3 and n % 1024 ** 3 == 0:
        return "%d GiB" % (n // 1024 ** 3)
    return "%d MiB" % (n // (1024 * 1024)) if n >= 1024 * 1024 else "%d bytes" % n
