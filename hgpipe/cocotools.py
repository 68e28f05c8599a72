"""The one home of what hgpipe shares with pycocotools: its import, its silence, and the
pixel convention of COCO-format files.

pycocotools is optional (the ``[coco]`` extra): only COCO-format keypoint files
(:mod:`hgpipe.data.readers.coco_json`) and OKS AP (:func:`hgpipe.eval.keypoint_metrics.
oks_ap`) need it, so it is imported here on first use and its absence is one line that
says how to install it. Its ``COCO`` index, ``loadRes`` and ``COCOeval`` print progress
lines on stdout ("creating index...", the summary table); hgpipe's commands print their
own results, so every call goes through :func:`quiet`.

Pixels: a COCO-format file's keypoints are 0-based image pixels; hgpipe's records, shards
and predictions files use MPII's 1-based pixels (:mod:`hgpipe.data.records`). The reader
adds :data:`PIXEL_OFFSET` and a COCO results file subtracts it, as bearpaw/pytorch-pose
converts COCO for its MPII-style loader (``miscs/gen_coco.m:55``: ``x=kp(1:3:end)+1``).
"""
import contextlib
import io

PIXEL_OFFSET = 1.0   # hgpipe (1-based) = COCO (0-based) + 1

INSTALL_HINT = "pip install 'hgpipe[coco]' (or pip install pycocotools)"


class MissingPycocotools(ImportError):
    """pycocotools is not installed; the message says what needs it and how to get it."""


def pycocotools(what):
    """``(COCO, COCOeval)`` from pycocotools; :class:`MissingPycocotools` naming ``what``
    needs them when the package is absent."""
    try:
        from pycocotools.coco import COCO
        from pycocotools.cocoeval import COCOeval
    except ImportError as exc:
        raise MissingPycocotools("%s needs pycocotools (%s): %s" % (what, exc, INSTALL_HINT))
    return COCO, COCOeval


@contextlib.contextmanager
def quiet():
    """pycocotools' progress prints go nowhere (hgpipe reports its own lines)."""
    with contextlib.redirect_stdout(io.StringIO()):
        yield
