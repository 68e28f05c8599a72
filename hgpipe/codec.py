"""The heatmap codec: the one home of hgpipe's pixel convention.

Everything that turns joints into target heatmaps, heatmaps back into joints, mirrors a
crop, or moves a point between frames lives here; prepare, the loss targets, the trainer's
validation, ``hgpipe pck`` and ``hgpipe predict`` all go through it.

Frames (all float, pixel centres at integer coordinates):

* *image*: MPII annotation pixels, **1-based** (x = 1 is the centre of the first column).
* *crop*: **0-based** pixels of the ``input_size`` network input.
* *heatmap*: **0-based** pixels of the ``heatmap_size`` output.  One heatmap pixel
  covers ``stride = input_size / heatmap_size`` crop pixels (4 for 256 -> 64), and the
  two frames share their pixel centres' grid, so::

      crop = stride * heatmap + (stride - 1) / 2        # = 4 * heatmap + 1.5 at stride 4

  (heatmap pixel 0 covers crop pixels 0..3, whose centre is 1.5).
* *cv2*: 0-based pixels of the decoded image array, possibly decoded ``reduction`` times
  smaller (``cv2.IMREAD_REDUCED_*``); reduced pixel r has the full-size 0-based centre
  ``reduction * r + (reduction - 1) / 2``.  :func:`cv2_affine` folds the 1-based -> 0-based
  offset and the reduction into an image -> crop matrix, so one ``cv2.warpAffine`` of
  the decoded array makes the crop, and every stored affine stays in 1-based image pixels.

Encode (joints in crop pixels -> targets): joints go to heatmap pixels; a joint is
supervised (weight 1) only if it is annotated and its heatmap position lies inside the
map (``-0.5 <= x < heatmap_size - 0.5`` on both axes, i.e. inside a pixel of it).  Each
supervised joint gets a Gaussian of peak 1 and standard deviation ``sigma`` heatmap
pixels centred on its float position (no rounding to a pixel); the others an all-zero
map.  Two target settings (``[Prepare] gaussian_centre`` and ``gaussian_window``) give
the references' drawings instead:

* ``gaussian_centre = pixel``: the centre is the nearest heatmap pixel
  (``floor(x + 0.5)``) -- the references draw at integer positions (pose-hg-train
  ``src/util/img.lua:64`` ``new_point:int()``; bearpaw ``draw_labelmap`` ``int(pt)``;
  PSH ``data/MPII/dp.py:27`` ``int(pt[0])``), each truncating in its own frame, which
  is not hgpipe's pixel-centred one (see above), so "nearest pixel here" is the rule
  that is the same for all frames, not one of theirs to the bit.
* ``gaussian_window = k`` (odd): the map is cut to the k x k pixels around the
  centre's nearest pixel (0: not cut).  pose-hg-train's ``drawGaussian`` pastes
  ``image.gaussian(2 ceil(3 sigma) + 1)`` (``img.lua:207, 213-214``): 7 x 7 for
  ``-hmGauss 1``, whose standard deviation is 0.25 x 7 = 1.75 px (pose-hg-train issue
  25); bearpaw's ``draw_labelmap`` a 7 x 7 patch of sigma 1 (``size = 6 * sigma + 1``);
  PSH's ``GenerateHeatmap`` a 9 x 9 one (``dp.py:15``, ``size = 6*sigma + 3``).

Shards store the maps as uint8, ``round(value * HEATMAP_SCALE)``, rendered only
inside the window where a Gaussian's stored value is non-zero
(:func:`render_quantized_heatmaps`, byte-identical to quantizing the full render); the
graph divides by ``HEATMAP_SCALE`` again (:func:`hgpipe.model.hourglass.heatmaps_from_uint8`).

Decode (heatmaps -> joints): the argmax, moved a quarter pixel along each axis toward the
higher of its two neighbours (Newell's and bearpaw's rule), only when the argmax is
strictly inside the map on both axes; then ``heatmap -> crop -> image`` with each
sample's stored ``crop_to_image`` affine.

Flip: because crop and heatmap both put pixel centres at integers, mirroring a crop of
width ``S`` (``x -> S - 1 - x``) is exactly mirroring its heatmap of width ``W``
(``x -> W - 1 - x``): no one-pixel shift (the shift some code bases add comes from a frame
without the ``(stride - 1) / 2`` centring).  A mirrored person's left joints are the
original's right ones: after a flip, joint/channel k holds the original joint
``keypoints.flip_permutation[k]`` (the data's :class:`hgpipe.joints.KeypointSet`, MPII
unless given; the permutation is its own inverse).
Prepare folds the mirror into its crop affine
(:func:`hgpipe.data.transforms.image_to_crop_affine`); the flip test mirrors the input
with :func:`flip_images` and maps the output back with :func:`flip_heatmaps`; the
training graph's device-side flip (:mod:`hgpipe.train.augment`) does the same in TF ops.
"""
import numpy as np

from hgpipe.joints import MPII

HEATMAP_SCALE = 255.0  # stored uint8 value = round(gaussian * HEATMAP_SCALE)
QUARTER_STEP = 0.25    # decode: sub-pixel step toward the higher neighbour


# ---------------------------------------------------------------- frame conversions
def crop_to_heatmap_linear(input_size, heatmap_size):
    """(gain, offset) with ``heatmap = gain * crop + offset``: the frame change as two
    numbers, for code that applies it to tensors (the device geometry)."""
    stride = float(input_size) / heatmap_size
    return 1.0 / stride, -(stride - 1.0) / (2.0 * stride)


def crop_to_heatmap(points, input_size, heatmap_size):
    """Crop pixels -> heatmap pixels (pixel centres aligned, see the module docstring)."""
    gain, offset = crop_to_heatmap_linear(input_size, heatmap_size)
    return np.asarray(points, dtype=np.float64) * gain + offset


def heatmap_to_crop(points, input_size, heatmap_size):
    """Heatmap pixels -> crop pixels; the inverse of :func:`crop_to_heatmap`."""
    stride = float(input_size) / heatmap_size
    return np.asarray(points, dtype=np.float64) * stride + (stride - 1.0) / 2.0


def cv2_affine(image_to_crop, reduction=1):
    """An image (1-based) -> crop affine, rewritten for ``cv2.warpAffine`` of the decoded
    array: 0-based pixels of an image decoded ``reduction`` times smaller.

    Full 0-based = image - 1, and reduced pixel r has the full 0-based centre
    ``f * r + (f - 1) / 2``; both are folded into the matrix's offset and linear part.
    """
    f = float(reduction)
    folded = image_to_crop.copy()
    folded[:, 2] += image_to_crop[:, :2].dot([1.0 + (f - 1.0) / 2.0] * 2)
    folded[:, :2] *= f
    return folded


def crop_to_image_coords(coords, affine):
    """(N, J, 2) crop pixels -> image pixels with each sample's (N, 2, 3) ``crop_to_image``."""
    coords = np.asarray(coords, dtype=np.float64)
    affine = np.asarray(affine, dtype=np.float64)
    if affine.shape[-2:] != (2, 3) or affine.shape[:-2] != coords.shape[:-2]:
        raise ValueError("affine must be (N, 2, 3) for coords %s, got %s"
                         % (coords.shape, affine.shape))
    return np.einsum("nij,nkj->nki", affine[..., :2], coords) + affine[:, None, :, 2]


# ---------------------------------------------------------------- encode
def supervised_bounds(heatmap_size):
    """(low, high): a joint is inside the map when ``low <= x < high`` on both axes."""
    return -0.5, heatmap_size - 0.5


def gaussian_exponent(sigma):
    """The factor k of the Gaussian ``exp(k * d^2)``, d in heatmap pixels."""
    return -0.5 / sigma ** 2


def supervised(joints_hm, annotated, heatmap_size):
    """Per-joint weights (float32 0/1): annotated and inside the heatmap."""
    low, high = supervised_bounds(heatmap_size)
    inside = np.all((joints_hm >= low) & (joints_hm < high), axis=1)
    return (annotated & inside).astype(np.float32)


GAUSSIAN_CENTRES = ("float", "pixel")


def gaussian_centres(joints_hm, centre="float"):
    """Where each joint's Gaussian is drawn: its float position, or (``"pixel"``) the
    nearest heatmap pixel (see the module docstring)."""
    if centre not in GAUSSIAN_CENTRES:
        raise ValueError("gaussian centre must be one of %s, got %r"
                         % (", ".join(GAUSSIAN_CENTRES), centre))
    joints_hm = np.asarray(joints_hm, dtype=np.float64)
    return np.floor(joints_hm + 0.5) if centre == "pixel" else joints_hm


def _gaussian_axes(joints, heatmap_size, sigma, window=0):
    """The separable factors of every joint's Gaussian: gx (W, J) and gy (H, J), float32.

    ``window`` (odd, 0: none) zeroes each factor beyond ``window // 2`` pixels of the
    centre's nearest pixel, which cuts the 2-D map to a window x window square.
    """
    grid = np.arange(heatmap_size, dtype=np.float32)
    joints = np.asarray(joints, dtype=np.float32)
    scale = np.float32(gaussian_exponent(sigma))
    gx = np.exp((grid[:, None] - joints[None, :, 0]) ** 2 * scale)  # (W, J)
    gy = np.exp((grid[:, None] - joints[None, :, 1]) ** 2 * scale)  # (H, J)
    if window:
        nearest = np.floor(joints.astype(np.float64) + 0.5)
        half = window // 2
        gx *= np.abs(grid[:, None] - nearest[None, :, 0]) <= half
        gy *= np.abs(grid[:, None] - nearest[None, :, 1]) <= half
    return gx, gy


def check_window(window):
    """A Gaussian window is 0 (none) or an odd number of pixels."""
    if window < 0 or (window and window % 2 == 0):
        raise ValueError("gaussian window must be 0 or odd, got %r" % (window,))
    return int(window)


def render_heatmaps(joints, weights, heatmap_size, sigma, window=0):
    """Float Gaussians of height 1 at float joint positions, (H, W, J) float32.

    Computed separably (an outer product per joint, broadcast straight into the output
    layout) from the exact float coordinates; joints with weight 0 get an all-zero map.
    """
    gx, gy = _gaussian_axes(joints, heatmap_size, sigma, window)
    gy *= (np.asarray(weights) > 0)[None, :]
    return gy[:, None, :] * gx[None, :, :]


def render_quantized_heatmaps(joints, weights, heatmap_size, sigma, scale, out=None,
                              window=0):
    """``quantize_heatmaps(render_heatmaps(...), scale)``, byte for byte, 3-4x cheaper.

    A stored value round(gx * gy * scale) is never above round(gx * scale) (gy <= 1 and
    every step is monotonic in float32), so a map is zero outside the rows and columns
    where its 1-D factors alone quantize above zero (about +-3.5 sigma): only that window
    is computed, for all joints at once. ``out`` (H, W, J) uint8 is overwritten if given.
    A ``window`` cut zeroes the factors themselves, so the same holds.
    """
    gx, gy = _gaussian_axes(joints, heatmap_size, sigma, window)
    if out is None:
        out = np.zeros((heatmap_size, heatmap_size, gx.shape[1]), np.uint8)
    else:
        out.fill(0)
    scale, half = np.float32(scale), np.float32(0.5)
    live_x, live_y = gx * scale + half >= 1, gy * scale + half >= 1
    drawn = np.flatnonzero((np.asarray(weights) > 0) & live_x.any(0) & live_y.any(0))
    if len(drawn):
        windows = []
        for live in (live_y, live_x):
            first = live.argmax(0)[drawn]
            end = heatmap_size - live[::-1].argmax(0)[drawn]
            size = int((end - first).max())   # one window size for all joints, shifted
            start = np.minimum(first, heatmap_size - size)   # to stay inside the map
            windows.append(start[:, None] + np.arange(size))
        ys, xs = windows
        column = drawn[:, None]
        values = gy[ys, column][:, :, None] * gx[xs, column][:, None, :]
        out[ys[:, :, None], xs[:, None, :], drawn[:, None, None]] = (
            values * scale + half).astype(np.uint8)
    return out


def quantize_heatmaps(heatmaps, scale=HEATMAP_SCALE):
    """Float heatmaps in [0, 1] -> stored uint8 (value * scale, rounded half up)."""
    return (heatmaps * np.float32(scale) + np.float32(0.5)).astype(np.uint8)


def dequantize_heatmaps(stored, scale=HEATMAP_SCALE):
    """Stored uint8 heatmaps -> float32 in [0, 1] (the host-side twin of the graph's
    :func:`hgpipe.model.hourglass.heatmaps_from_uint8`)."""
    return np.asarray(stored).astype(np.float32) / np.float32(scale)


# ---------------------------------------------------------------- decode
def decode_heatmaps(heatmaps):
    """(N, H, W, J) heatmaps -> coords (N, J, 2) float64 (x, y heatmap pixels), conf (N, J).

    The argmax, moved a quarter pixel along each axis toward the higher of its two
    neighbours (Newell's and bearpaw's rule).  As there, the step is only taken when the
    argmax is strictly inside the map on both axes.  Works on uint8 heatmaps too: values
    are compared as floats, never subtracted in uint8.
    """
    heatmaps = np.asarray(heatmaps)
    if heatmaps.ndim != 4:
        raise ValueError("heatmaps must be (N, H, W, J), got shape %s" % (heatmaps.shape,))
    n, h, w, j = heatmaps.shape
    flat = np.moveaxis(heatmaps, 3, 1).reshape(n, j, h * w)  # (N, J, H*W)
    best = np.argmax(flat, axis=-1)
    ys, xs = np.divmod(best, w)
    confidence = np.take_along_axis(flat, best[..., None], axis=-1)[..., 0].astype(np.float64)

    inside = (xs > 0) & (xs < w - 1) & (ys > 0) & (ys < h - 1)
    # Neighbour indices clipped so the gather is always valid; `inside` masks the result.
    def value(dy, dx):
        yy = np.clip(ys + dy, 0, h - 1)
        xx = np.clip(xs + dx, 0, w - 1)
        idx = (yy * w + xx)[..., None]
        return np.take_along_axis(flat, idx, axis=-1)[..., 0].astype(np.float64)

    step_x = np.sign(value(0, 1) - value(0, -1)) * QUARTER_STEP
    step_y = np.sign(value(1, 0) - value(-1, 0)) * QUARTER_STEP
    coords = np.stack([xs, ys], axis=-1).astype(np.float64)
    coords[..., 0] += np.where(inside, step_x, 0.0)
    coords[..., 1] += np.where(inside, step_y, 0.0)
    return coords, confidence


def heatmaps_to_image_coords(heatmaps, affine, input_size):
    """Decode (N, H, W, J) heatmaps straight to image pixels and confidences."""
    heatmaps = np.asarray(heatmaps)
    coords, confidence = decode_heatmaps(heatmaps)
    crop = heatmap_to_crop(coords, input_size, heatmaps.shape[2])
    return crop_to_image_coords(crop, affine), confidence


# ---------------------------------------------------------------- flip
def swap_left_right(values, axis=0, keypoints=MPII):
    """Reorder a per-joint array so that index k holds joint
    ``keypoints.flip_permutation[k]``: what a mirror does to joint identities (left
    becomes right)."""
    return np.take(np.asarray(values), keypoints.flip_permutation, axis=axis)


def flip_images(images):
    """Mirror (..., H, W, C) images horizontally (x -> W - 1 - x)."""
    return np.asarray(images)[..., ::-1, :]


def flip_joints(joints, width, keypoints=MPII):
    """Joint positions (..., J, 2) in a frame of ``width`` pixels (crop or heatmap) ->
    those of the mirrored frame: x -> width - 1 - x, left/right swapped."""
    mirrored = np.array(joints, dtype=np.float64)
    mirrored[..., 0] = (width - 1.0) - mirrored[..., 0]
    return swap_left_right(mirrored, axis=-2, keypoints=keypoints)


def flip_heatmaps(heatmaps, keypoints=MPII):
    """Heatmaps of a horizontally mirrored input -> heatmaps in the original's frame (and
    back: the operation is its own inverse).

    Mirrors the width axis and swaps left/right joint channels, so that averaging with
    the unflipped output (flip test) adds like to like.  Input (N, H, W, J) or (H, W, J).
    """
    heatmaps = np.asarray(heatmaps)
    if heatmaps.shape[-1] != keypoints.num_joints:
        raise ValueError("flip_heatmaps needs %d joint channels last (%s), got shape %s"
                         % (keypoints.num_joints, keypoints.name, heatmaps.shape))
    return heatmaps[..., ::-1, :][..., list(keypoints.flip_permutation)]


# ---------------------------------------------------------------- the codec object
class HeatmapCodec(object):
    """The convention bound to one network geometry: ``input_size`` crop pixels,
    ``heatmap_size`` heatmap pixels (``stride`` = their ratio) and the Gaussian's
    ``sigma`` in heatmap pixels, ``centre`` and ``window`` (needed to encode only; see
    the module docstring)."""

    def __init__(self, input_size, heatmap_size, sigma=None, centre="float", window=0):
        self.input_size = int(input_size)
        self.heatmap_size = int(heatmap_size)
        self.sigma = sigma
        gaussian_centres(np.zeros((0, 2)), centre)  # checks the name
        self.centre = centre
        self.window = check_window(window)

    @property
    def stride(self):
        return float(self.input_size) / self.heatmap_size

    def __repr__(self):
        return ("HeatmapCodec(input_size=%d, heatmap_size=%d, sigma=%r, centre=%r, "
                "window=%d)" % (self.input_size, self.heatmap_size, self.sigma, self.centre,
                                self.window))

    def crop_to_heatmap(self, points):
        return crop_to_heatmap(points, self.input_size, self.heatmap_size)

    def heatmap_to_crop(self, points):
        return heatmap_to_crop(points, self.input_size, self.heatmap_size)

    def encode(self, joints_crop, annotated, stored_scale=None, out=None):
        """Joints (J, 2) in crop pixels and their annotated flags (J,) bool ->
        (heatmaps (H, W, J), weights (J,) float32, joints (J, 2) in heatmap pixels).
        The returned joints are the true positions; the Gaussians sit at
        :func:`gaussian_centres` of them.

        Heatmaps are float32 in [0, 1], or with ``stored_scale`` (normally
        :data:`HEATMAP_SCALE`) the stored uint8 maps, written into ``out`` if given.
        """
        if self.sigma is None:
            raise ValueError("HeatmapCodec.encode needs a sigma")
        joints_hm = self.crop_to_heatmap(joints_crop)
        weights = supervised(joints_hm, annotated, self.heatmap_size)
        centres = gaussian_centres(joints_hm, self.centre)
        if stored_scale is None:
            heatmaps = render_heatmaps(centres, weights, self.heatmap_size, self.sigma,
                                       self.window)
        else:
            heatmaps = render_quantized_heatmaps(centres, weights, self.heatmap_size,
                                                 self.sigma, stored_scale, out, self.window)
        return heatmaps, weights, joints_hm

    @staticmethod
    def decode(heatmaps):
        """(N, H, W, J) -> (coords in heatmap pixels (N, J, 2), confidences (N, J))."""
        return decode_heatmaps(heatmaps)

    def decode_to_crop(self, heatmaps):
        """(N, H, W, J) -> (coords in crop pixels (N, J, 2), confidences (N, J))."""
        coords, confidence = decode_heatmaps(heatmaps)
        return self.heatmap_to_crop(coords), confidence
