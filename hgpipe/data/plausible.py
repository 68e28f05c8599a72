"""Person boxes that cannot be right: the one home of the thresholds.

A crop is made from the raw MPII ``objpos``/``scale`` (:func:`hgpipe.data.transforms.
hourglass_box`: a square of ``200 * 1.25 * scale`` image pixels). Typical mistakes give a
crop that is all black with joints labelled on it, or joints predicted far off the image:

* a scale given in pixels instead of pixels / 200 (x200): the crop is hundreds of times
  the image, which then covers a speck of it;
* an ``objpos`` from another image or another coordinate frame: the crop misses the image;
* a scale of 0.001: a crop of a fraction of a pixel.

So a box is refused (by ``predict``) or skipped with a reason in ``skipped.json`` (by
``prepare``) when either threshold below is crossed. Real MPII persons are far from both:
the smallest share of a crop on its image among the 25,204 MPII persons is 5.4%
(tested), and their smallest crop is far above the minimum side.
"""
import numpy as np

from hgpipe.data import transforms

SKIP_REASON = "implausible person box"  # prepare's reason in skipped.json

# at least this fraction of the crop square must lie on the image (the 25,204 MPII
# train/val persons: 5.4% at the least, the close-up of 012545809.jpg, scale 24.8)
MIN_CROP_ON_IMAGE = 0.01
# the crop must span at least this many image pixels (a person at least 6.4 px tall)
MIN_CROP_SIDE = 8.0


def box_problem(center, scale, width, height):
    """Why the raw MPII box cannot be right for a ``width`` x ``height`` image, or None.

    ``center`` is the raw objpos (1-based pixels), ``scale`` the raw MPII scale.
    """
    center = np.asarray(center, dtype=np.float64).reshape(2)
    if not (np.all(np.isfinite(center)) and np.isfinite(scale) and scale > 0):
        return "centre %s / scale %r are not finite positive numbers" % (
            center.tolist(), scale)
    crop_center, crop_scale = transforms.hourglass_box(center, scale)
    side = transforms.BOX_PIXELS * crop_scale
    if side < MIN_CROP_SIDE:
        return ("scale %g is implausible: its crop spans %.2g image pixels (fewer than %g)"
                % (scale, side, MIN_CROP_SIDE))
    # image pixels span [0.5, W + 0.5] in 1-based coordinates
    low, high = crop_center - side / 2.0, crop_center + side / 2.0
    overlap_x = max(0.0, min(high[0], width + 0.5) - max(low[0], 0.5))
    overlap_y = max(0.0, min(high[1], height + 0.5) - max(low[1], 0.5))
    fraction = overlap_x * overlap_y / (side * side)
    if fraction < MIN_CROP_ON_IMAGE:
        if overlap_x * overlap_y == 0:
            return ("person box (centre %.0f,%.0f, scale %g) is outside the %dx%d image"
                    % (center[0], center[1], scale, width, height))
        return ("scale %g is implausible for a %dx%d image: its crop (%.0f px square) "
                "leaves %.1f%% of itself on the image (under %.0f%%; a scale in pixels "
                "instead of pixels/200?)" % (scale, width, height, side, 100 * fraction,
                                             100 * MIN_CROP_ON_IMAGE))
    return None
