"""A small, deterministic, generated dataset in real MPII annotation format.

Why it exists: the README's main job (``hgpipe prepare --mpii data/demo`` and a tiny
model trained on a CPU) has to run on any machine without the 12 GB MPII download, and a
tiny Stacked Hourglass has to *visibly* learn it in a few minutes. So the people here are
drawn figures (thick limbs, torso, head with hair and eyes) on textured backgrounds, with
the 16 MPII joints at known float positions, and the annotations are written exactly like
the widely used ``mpii_annotations.json`` conversion of the official MPII labels.

Conventions copied from the real data (measured on the 25,204 real persons):

* coordinates are MPII's 1-based pixels: a joint drawn at 0-based pixel ``p`` is
  annotated ``p + 1``;
* ``r_*`` joints are on the person's right (the image's left for a person facing the
  camera; a few figures are seen from behind, with no face, and are mirrored);
* thorax is the shoulders' midpoint and pelvis the hips' midpoint;
* ``scale_provided`` is ``6 x |head_top - upper_neck| / 200`` (the relation holds
  exactly in the real file), so the usual crop (centre moved down 15*s, box of 1.25*s x
  200 px) frames a demo person like a real one;
* the head box is centred on the neck/head-top midpoint with a diagonal of 1.25 head
  segments (so the PCKh normaliser 0.6 x diagonal is 0.75 head segments, as in MPII);
* ``objpos`` is an integer point near the middle of the body, a little above it;
* joints outside the image, and a few random others, are not annotated ([0, 0, 0]);
  ``vis`` is 0 where another figure, an occluder or another body part covers the joint.

Determinism: every image has its own ``numpy.random.RandomState([seed, index])`` (the
legacy generator, identical on numpy 1.18 and 2.x); geometry uses Python floats and the
``math`` module, image arithmetic only exact numpy operations (no vectorised
transcendental functions, whose last bits differ between numpy builds), the JSON is
formatted by hand with fixed ``%.3f`` numbers, and JPEGs are encoded with a fixed quality.

Regenerate the committed copy with ``python -m hgpipe.data.demo data/demo``.
"""
import argparse
import hashlib
import json
import math
import os
import re
import sys
from collections import namedtuple

import cv2
import numpy as np

from hgpipe.atomic import ensure_dir
from hgpipe.joints import (
    HEAD_TOP, L_ANKLE, L_ELBOW, L_HIP, L_KNEE, L_SHOULDER, L_WRIST, NUM_JOINTS, PELVIS,
    R_ANKLE, R_ELBOW, R_HIP, R_KNEE, R_SHOULDER, R_WRIST, THORAX, UPPER_NECK)

DEFAULT_TRAIN_IMAGES = 320
DEFAULT_VAL_IMAGES = 80
DEFAULT_SEED = 0
DEFAULT_IMAGE_SIZE = ((320, 240), (448, 336))   # (min (w, h), max (w, h)), landscape
JPEG_QUALITY = 85

ANNOTATION_FILE = os.path.join("annotations", "mpii_annotations.json")
HEAD_BOX_FILE = os.path.join("annotations", "head_boxes.json")
CHECKSUM_FILE = "SHA256SUMS"
IMAGE_DIR = "images"
# Demo annolist indices start above the official range (1..24,987): the readers look
# persons up in the Tompson validation split by (annolist_index, people_index), and a demo
# person must never be taken for an official one (wrong image, wrong head box).
ANNOLIST_BASE = 100000
_IMAGE_NAME = "demo_%d.jpg"      # numbered by annolist_index
_IMAGE_NAME_RE = re.compile(r"^demo_\d+\.jpg$")

# The real file's key order (mpii_annotations.json); readers must not depend on it, but
# writing it the same way keeps the demo file a faithful sample of the format.
JSON_KEYS = ("dataset", "isValidation", "img_paths", "img_width", "img_height", "objpos",
             "joint_self", "scale_provided", "joint_others", "scale_provided_other",
             "objpos_other", "annolist_index", "people_index", "numOtherPeople")
# What the real file (a JSONlab export) holds instead of a list when a person has no
# other people in the image.
_JSONLAB_EMPTY = '{"_ArrayType_": "double","_ArraySize_": [0,0],"_ArrayData_": null}'

# Body parts, as painted into the part map (value = 16 * person slot + part).
(TORSO, NECK, HEAD, R_UPPER_ARM, R_FOREARM, R_HAND, L_UPPER_ARM, L_FOREARM, L_HAND,
 R_THIGH, R_SHIN, R_FOOT, L_THIGH, L_SHIN, L_FOOT) = range(1, 16)
PARTS_PER_PERSON = 16
OCCLUDER = 255

# A joint is visible when the pixel under it belongs to one of the parts that meet there.
JOINT_PARTS = {
    R_ANKLE: (R_SHIN, R_FOOT), R_KNEE: (R_THIGH, R_SHIN), R_HIP: (TORSO, R_THIGH),
    L_HIP: (TORSO, L_THIGH), L_KNEE: (L_THIGH, L_SHIN), L_ANKLE: (L_SHIN, L_FOOT),
    PELVIS: (TORSO, R_THIGH, L_THIGH), THORAX: (TORSO, NECK), UPPER_NECK: (NECK, HEAD),
    HEAD_TOP: (HEAD,), R_WRIST: (R_FOREARM, R_HAND), R_ELBOW: (R_UPPER_ARM, R_FOREARM),
    R_SHOULDER: (TORSO, R_UPPER_ARM), L_SHOULDER: (TORSO, L_UPPER_ARM),
    L_ELBOW: (L_UPPER_ARM, L_FOREARM), L_WRIST: (L_FOREARM, L_HAND),
}

# Skin and hair palettes (BGR) so that figures look like people rather than random blobs.
_SKIN = ((172, 219, 255), (125, 194, 241), (105, 172, 224), (66, 134, 198), (36, 85, 141),
         (23, 51, 92), (180, 205, 255), (90, 120, 170))
_HAIR = ((20, 25, 30), (25, 45, 70), (40, 80, 120), (100, 170, 200), (150, 150, 150),
         (30, 60, 140))
_MIN_CONTRAST = 45          # wanted max-channel distance between a colour and the canvas
_SUBPIXEL_BITS = 4          # cv2 drawing precision: 1/16 pixel
_SUBPIXEL = 1 << _SUBPIXEL_BITS

# One drawn person and its labels (joints in 0-based image pixels; the JSON adds 1).
DemoPerson = namedtuple("DemoPerson", [
    "joints",       # (16, 2) float64, 0-based pixels, rounded so that joints + 1 has 3 decimals
    "annotated",    # (16,) bool
    "visible",      # (16,) bool (meaningful where annotated)
    "scale",        # raw MPII scale, 6 x head segment / 200
    "objpos",       # (2,) 1-based integer person centre
    "head_box",     # (4,) 1-based x1, y1, x2, y2
    "slot",         # index in the image's drawing order (part map value // 16)
    "back_view",    # True if seen from behind (their right is on the image's right)
])
DemoScene = namedtuple("DemoScene", [
    "image",        # (H, W, 3) uint8 BGR, what is written as JPEG
    "background",   # (H, W, 3) uint8 BGR, the image before any figure was drawn
    "part_map",     # (H, W) uint8: 0 background, 16 * slot + part, 255 occluder
    "persons",      # list of DemoPerson in annotation order (people_index - 1)
])


# ----------------------------------------------------------------------------- geometry
def _direction(degrees):
    """Unit vector at ``degrees`` from straight down, turning towards +x (y points down)."""
    a = math.radians(degrees)
    return (math.sin(a), math.cos(a))


def _add(p, v, k=1.0):
    return (p[0] + k * v[0], p[1] + k * v[1])


def _limb_angle(rng, wide_chance, narrow, wide):
    """Sample an angle: usually from the common ``narrow`` range, sometimes from ``wide``."""
    lo, hi = wide if rng.rand() < wide_chance else narrow
    return float(rng.uniform(lo, hi))


def _foreshortening(rng):
    """Length factor of a limb pointing partly towards or away from the camera."""
    return 1.0 if rng.rand() < 0.65 else float(rng.uniform(0.55, 1.0))


def sample_pose(rng, back_view):
    """Joints and drawing anchors of one figure in body units (1 unit = head segment).

    The pelvis is at the origin, y points down. ``back_view`` mirrors the person's sides:
    seen from behind, their right is on the image's right.
    """
    out_r = 1.0 if back_view else -1.0     # image-x sign of the person's right side
    tilt = float(np.clip(rng.normal(0.0, 6.0), -20.0, 20.0))
    up, side = _direction(180.0 + tilt), _direction(90.0 + tilt)
    width = float(rng.uniform(0.55, 1.05))  # < 1: body turned away from the camera plane
    hip_half, shoulder_half = 0.32 * width, 0.62 * width
    j = [None] * NUM_JOINTS
    j[PELVIS] = (0.0, 0.0)
    j[THORAX] = _add(j[PELVIS], up, 1.75 * float(rng.uniform(0.9, 1.05)))
    j[R_HIP] = _add(j[PELVIS], side, out_r * hip_half)
    j[L_HIP] = _add(j[PELVIS], side, -out_r * hip_half)
    j[R_SHOULDER] = _add(j[THORAX], side, out_r * shoulder_half)
    j[L_SHOULDER] = _add(j[THORAX], side, -out_r * shoulder_half)
    neck_angle = 180.0 + tilt + float(np.clip(rng.normal(0.0, 8.0), -25.0, 25.0))
    j[UPPER_NECK] = _add(j[THORAX], _direction(neck_angle), 0.3)
    head_angle = neck_angle + float(np.clip(rng.normal(0.0, 8.0), -25.0, 25.0))
    j[HEAD_TOP] = _add(j[UPPER_NECK], _direction(head_angle), 1.0)
    for sign, (shoulder, elbow, wrist) in ((out_r, (R_SHOULDER, R_ELBOW, R_WRIST)),
                                           (-out_r, (L_SHOULDER, L_ELBOW, L_WRIST))):
        raise_ = _limb_angle(rng, 0.4, (5.0, 55.0), (-25.0, 165.0))
        bend = _limb_angle(rng, 0.6, (-25.0, 25.0), (-140.0, 140.0))
        j[elbow] = _add(j[shoulder], _direction(tilt + sign * raise_),
                        1.05 * _foreshortening(rng))
        j[wrist] = _add(j[elbow], _direction(tilt + sign * (raise_ + bend)),
                        0.95 * _foreshortening(rng))
    for sign, (hip, knee, ankle) in ((out_r, (R_HIP, R_KNEE, R_ANKLE)),
                                     (-out_r, (L_HIP, L_KNEE, L_ANKLE))):
        spread = _limb_angle(rng, 0.3, (-5.0, 22.0), (-20.0, 60.0))
        bend = _limb_angle(rng, 0.3, (-12.0, 12.0), (-70.0, 70.0))
        j[knee] = _add(j[hip], _direction(0.3 * tilt + sign * spread),
                       1.45 * _foreshortening(rng))
        j[ankle] = _add(j[knee], _direction(0.3 * tilt + sign * (spread + bend)),
                        1.4 * _foreshortening(rng))
    return {"joints": j, "up": up, "side": side, "hip_half": hip_half,
            "shoulder_half": shoulder_half, "back_view": back_view}


def _transform(points, degrees, unit, offset):
    """Rotate body-unit points about the origin, scale by ``unit`` px and translate."""
    c, s = math.cos(math.radians(degrees)), math.sin(math.radians(degrees))
    return [(offset[0] + unit * (c * x - s * y), offset[1] + unit * (s * x + c * y))
            for x, y in points]


def _mpii_round(p):
    """Round a 0-based point so that its 1-based annotation has exactly 3 decimals."""
    return (round(p[0] + 1.0, 3) - 1.0, round(p[1] + 1.0, 3) - 1.0)


# ------------------------------------------------------------------------- backgrounds
def _bilinear_upsample(grid, height, width):
    """Upsample an (h, w, 3) grid of colours to (height, width, 3), one axis at a time."""
    gh, gw = grid.shape[:2]
    ys = np.arange(height, dtype=np.float64) * ((gh - 1.0) / max(height - 1, 1))
    xs = np.arange(width, dtype=np.float64) * ((gw - 1.0) / max(width - 1, 1))
    y0 = np.minimum(ys.astype(np.int64), gh - 2)
    x0 = np.minimum(xs.astype(np.int64), gw - 2)
    fy = (ys - y0)[:, None, None]
    fx = (xs - x0)[None, :, None]
    g = grid.astype(np.float64)
    rows = g[:, x0] * (1.0 - fx) + g[:, x0 + 1] * fx          # (gh, width, 3)
    return rows[y0] * (1.0 - fy) + rows[y0 + 1] * fy


def _ramp(width, height, degrees):
    """(height, width) positions along a direction, 0 at one image corner."""
    dx, dy = _direction(degrees)
    return (np.arange(width, dtype=np.float64) * dx)[None, :] + \
        (np.arange(height, dtype=np.float64) * dy)[:, None]


def _random_colour(rng):
    return tuple(int(v) for v in rng.randint(0, 256, size=3))


def make_background(rng, width, height):
    """A cluttered, textured background: gradient, colour blobs, stripes, shapes, noise.

    Textures are kept smooth enough that JPEGs stay small (the demo is committed).
    """
    c1 = np.array(_random_colour(rng), dtype=np.float64)
    c2 = np.array(_random_colour(rng), dtype=np.float64)
    proj = _ramp(width, height, float(rng.uniform(0.0, 360.0)))
    lo, hi = proj.min(), proj.max()
    t = ((proj - lo) * (1.0 / max(hi - lo, 1e-9)))[:, :, None]
    blobs = rng.randint(0, 256, size=(int(rng.randint(3, 7)), int(rng.randint(3, 9)), 3))
    alpha = float(rng.uniform(0.3, 0.7))
    img = (c1 * (1.0 - alpha) + (c2 - c1) * (1.0 - alpha) * t +
           _bilinear_upsample(blobs, height, width) * alpha)
    if rng.rand() < 0.5:  # stripes: a smooth triangle wave of random period and angle
        proj = _ramp(width, height, float(rng.uniform(0.0, 180.0)))
        tri = np.abs(2.0 * np.mod(proj * (1.0 / float(rng.uniform(10.0, 40.0))), 1.0) - 1.0)
        wave = tri * tri * (3.0 - 2.0 * tri) - 0.5
        img += (wave * float(rng.uniform(10.0, 45.0)))[:, :, None]
    img = np.clip(np.rint(img), 0, 255).astype(np.uint8)
    for _ in range(int(rng.randint(0, 7))):
        _draw_clutter(rng, img)
    noise_amp = int(rng.randint(0, 3))
    if noise_amp:
        noise = rng.randint(-noise_amp, noise_amp + 1, size=(height, width, 1))
        img = np.clip(img.astype(np.int16) + noise, 0, 255).astype(np.uint8)
    return img


def _draw_clutter(rng, img):
    """One random filled shape: rectangles, ellipses and bars make the scene less easy."""
    h, w = img.shape[:2]
    colour = _random_colour(rng)
    kind = int(rng.randint(0, 3))
    cx, cy = float(rng.uniform(0, w)), float(rng.uniform(0, h))
    size = float(rng.uniform(0.05, 0.3)) * min(w, h)
    if kind == 0:
        x2, y2 = cx + size * float(rng.uniform(0.5, 2.0)), cy + size * float(rng.uniform(0.5, 2.0))
        cv2.rectangle(img, (int(cx), int(cy)), (int(x2), int(y2)), colour, -1)
    elif kind == 1:
        _ellipse(img, (cx, cy), (size, size * float(rng.uniform(0.3, 1.0))),
                 float(rng.uniform(0, 180)), colour, cv2.LINE_AA)
    else:
        dx, dy = _direction(float(rng.uniform(0, 360)))
        end = (cx + 2.0 * size * dx, cy + 2.0 * size * dy)
        cv2.line(img, _fixed((cx, cy)), _fixed(end), colour,
                 max(1, int(size * float(rng.uniform(0.05, 0.2)))), cv2.LINE_AA, _SUBPIXEL_BITS)


# ---------------------------------------------------------------------------- drawing
def _fixed(p):
    return (int(round(p[0] * _SUBPIXEL)), int(round(p[1] * _SUBPIXEL)))


def _ellipse(img, centre, axes, angle, colour, line_type):
    cv2.ellipse(img, _fixed(centre), (max(1, int(round(axes[0] * _SUBPIXEL))),
                                      max(1, int(round(axes[1] * _SUBPIXEL)))),
                angle, 0, 360, colour, -1, line_type, _SUBPIXEL_BITS)


def _circle(img, centre, radius, colour, line_type):
    cv2.circle(img, _fixed(centre), max(1, int(round(radius * _SUBPIXEL))), colour, -1,
               line_type, _SUBPIXEL_BITS)


def _polygon(img, points, colour, line_type):
    pts = np.array([_fixed(p) for p in points], dtype=np.int32)
    cv2.fillConvexPoly(img, pts, colour, line_type, _SUBPIXEL_BITS)


class _Painter(object):
    """Paints shapes into the image (anti-aliased) and the part map (hard edges) at once."""

    def __init__(self, image, part_map, slot):
        self.image, self.part_map, self.base = image, part_map, PARTS_PER_PERSON * slot

    def circle(self, centre, radius, colour, part):
        _circle(self.image, centre, radius, colour, cv2.LINE_AA)
        _circle(self.part_map, centre, radius, self.base + part, cv2.LINE_8)

    def ellipse(self, centre, axes, angle, colour, part):
        _ellipse(self.image, centre, axes, angle, colour, cv2.LINE_AA)
        _ellipse(self.part_map, centre, axes, angle, self.base + part, cv2.LINE_8)

    def polygon(self, points, colour, part):
        _polygon(self.image, points, colour, cv2.LINE_AA)
        _polygon(self.part_map, points, self.base + part, cv2.LINE_8)

    def limb(self, a, b, radius_a, radius_b, colour, part):
        """A tapered capsule from ``a`` to ``b``: the thick limb of a drawn figure."""
        dx, dy = b[0] - a[0], b[1] - a[1]
        n = math.hypot(dx, dy)
        nx, ny = (-dy / n, dx / n) if n > 1e-6 else (1.0, 0.0)
        self.polygon([(a[0] + nx * radius_a, a[1] + ny * radius_a),
                      (b[0] + nx * radius_b, b[1] + ny * radius_b),
                      (b[0] - nx * radius_b, b[1] - ny * radius_b),
                      (a[0] - nx * radius_a, a[1] - ny * radius_a)], colour, part)
        self.circle(a, radius_a, colour, part)
        self.circle(b, radius_b, colour, part)


def _contrast(colour, samples):
    """Smallest max-channel distance between ``colour`` and the sampled canvas colours."""
    return min(max(abs(int(colour[c]) - int(s[c])) for c in range(3)) for s in samples)


def _pick_colour(rng, sampler, samples, tries=12):
    """The first sampled colour that stands out from the canvas, else the best of a few."""
    best, best_score = None, -1
    for _ in range(tries):
        colour = sampler(rng)
        score = _contrast(colour, samples)
        if score >= _MIN_CONTRAST:
            return colour
        if score > best_score:
            best, best_score = colour, score
    return best


def _jitter(rng, palette, amount):
    base = palette[int(rng.randint(0, len(palette)))]
    return tuple(min(255, max(0, v + int(rng.randint(-amount, amount + 1)))) for v in base)


def _draw_person(rng, painter, pts, anchors, unit, canvas):
    """Paint one figure: legs, torso, neck, head (hair, face) and arms, with clothes."""
    samples = []
    h, w = canvas.shape[:2]
    for x, y in pts["joints"]:
        xi, yi = int(round(x)), int(round(y))
        if 0 <= xi < w and 0 <= yi < h:
            samples.append(canvas[yi, xi])
    if not samples:
        samples = [canvas[h // 2, w // 2]]
    skin = _pick_colour(rng, lambda r: _jitter(r, _SKIN, 12), samples)
    hair = _pick_colour(rng, lambda r: _jitter(r, _HAIR, 10), samples)
    shirt = _pick_colour(rng, _random_colour, samples)
    trousers = _pick_colour(rng, _random_colour, samples)
    shoes = _pick_colour(rng, _random_colour, samples)
    forearm_colour = shirt if rng.rand() < 0.6 else skin
    shin_colour = trousers if rng.rand() < 0.75 else skin
    arm_behind = [rng.rand() < 0.15, rng.rand() < 0.15]
    j, u = pts["joints"], unit

    def arm(index):
        shoulder, elbow, wrist, upper, fore, hand = (
            (R_SHOULDER, R_ELBOW, R_WRIST, R_UPPER_ARM, R_FOREARM, R_HAND),
            (L_SHOULDER, L_ELBOW, L_WRIST, L_UPPER_ARM, L_FOREARM, L_HAND))[index]
        painter.limb(j[shoulder], j[elbow], 0.2 * u, 0.16 * u, shirt, upper)
        painter.limb(j[elbow], j[wrist], 0.15 * u, 0.12 * u, forearm_colour, fore)
        painter.circle(pts["hands"][index], 0.17 * u, skin, hand)

    for index, (hip, knee, ankle, thigh, shin, foot) in enumerate((
            (R_HIP, R_KNEE, R_ANKLE, R_THIGH, R_SHIN, R_FOOT),
            (L_HIP, L_KNEE, L_ANKLE, L_THIGH, L_SHIN, L_FOOT))):
        painter.ellipse(pts["feet"][index], (0.32 * u, 0.14 * u), anchors["foot_angle"],
                        shoes, foot)
        painter.limb(j[hip], j[knee], 0.3 * u, 0.22 * u, trousers, thigh)
        painter.limb(j[knee], j[ankle], 0.21 * u, 0.15 * u, shin_colour, shin)
    for index in (0, 1):
        if arm_behind[index]:
            arm(index)
    painter.polygon(pts["torso"], shirt, TORSO)
    painter.circle(j[R_SHOULDER], 0.22 * u, shirt, TORSO)
    painter.circle(j[L_SHOULDER], 0.22 * u, shirt, TORSO)
    painter.limb(j[THORAX], j[UPPER_NECK], 0.17 * u, 0.16 * u, skin, NECK)
    head_angle = anchors["head_angle"]
    head_centre = pts["head_centre"]
    if anchors["back_view"]:
        painter.ellipse(pts["hair_centre"], (0.43 * u, 0.6 * u), head_angle, hair, HEAD)
    else:  # the head top sits 0.15 head segments inside the hair's outline
        painter.ellipse(pts["hair_centre"], (0.42 * u, 0.55 * u), head_angle, hair, HEAD)
        painter.ellipse(head_centre, (0.39 * u, 0.5 * u), head_angle, skin, HEAD)
        for eye in pts["eyes"]:
            _circle(painter.image, eye, max(0.06 * u, 0.7), (250, 250, 250), cv2.LINE_AA)
            _circle(painter.image, eye, max(0.035 * u, 0.5), (30, 25, 20), cv2.LINE_AA)
    for index in (0, 1):
        if not arm_behind[index]:
            arm(index)


def _body_anchors(rng, pose):
    """Extra body-frame points the painter needs: torso outline, head, hands, feet."""
    j, up, side = pose["joints"], pose["up"], pose["side"]
    hip_out, shoulder_out = pose["hip_half"] + 0.25, pose["shoulder_half"] + 0.18
    torso = [_add(_add(j[THORAX], side, -shoulder_out), up, 0.12),
             _add(_add(j[THORAX], side, shoulder_out), up, 0.12),
             _add(_add(j[PELVIS], side, hip_out), up, -0.22),
             _add(_add(j[PELVIS], side, -hip_out), up, -0.22)]
    neck, top = j[UPPER_NECK], j[HEAD_TOP]
    head_dir = (top[0] - neck[0], top[1] - neck[1])  # unit length: head segment = 1
    head_side = (-head_dir[1], head_dir[0])
    head_centre = _add(neck, head_dir, 0.5)
    eyes = [_add(_add(head_centre, head_dir, 0.04), head_side, k) for k in (-0.15, 0.15)]
    hands, feet = [], []
    for elbow, wrist in ((R_ELBOW, R_WRIST), (L_ELBOW, L_WRIST)):
        d = (j[wrist][0] - j[elbow][0], j[wrist][1] - j[elbow][1])
        n = max(math.hypot(d[0], d[1]), 1e-6)
        hands.append(_add(j[wrist], d, 0.14 / n))
    out_r = 1.0 if pose["back_view"] else -1.0
    for sign, ankle in ((out_r, R_ANKLE), (-out_r, L_ANKLE)):
        feet.append(_add(_add(j[ankle], side, 0.16 * sign), up, -0.1))
    return {"torso": torso, "head_centre": head_centre,
            "hair_centre": _add(head_centre, head_dir, 0.1), "eyes": eyes,
            "hands": hands, "feet": feet, "foot_angle_body": float(rng.uniform(-15.0, 15.0))}


# ------------------------------------------------------------------------------ scenes
def _image_size(rng, image_size):
    (w0, h0), (w1, h1) = image_size
    w, h = int(rng.randint(w0, w1 + 1)), int(rng.randint(h0, h1 + 1))
    return (h, w) if rng.rand() < 0.2 else (w, h)   # a fifth are portrait


def _place(rng, pose_points, n_persons, slot, width, height):
    """Choose pixel size and position: unit (px per head segment), offset, rotation."""
    rotation = (float(rng.normal(0.0, 6.0)) if rng.rand() < 0.85
                else float(rng.uniform(-45.0, 45.0)))
    body = _transform(pose_points, rotation, 1.0, (0.0, 0.0))
    margin = 0.55
    x0 = min(p[0] for p in body) - margin
    x1 = max(p[0] for p in body) + margin
    y0 = min(p[1] for p in body) - margin
    y1 = max(p[1] for p in body) + margin
    frac = float(rng.uniform(*((0.55, 0.92), (0.45, 0.8), (0.4, 0.7))[n_persons - 1]))
    slot_w = width / float(n_persons)
    unit = min(frac * height / (y1 - y0), 1.1 * slot_w / (x1 - x0), 0.97 * width / (x1 - x0))
    bw, bh = unit * (x1 - x0), unit * (y1 - y0)
    lo = max(0.0, slot * slot_w - 0.1 * slot_w)
    hi = min(width - bw, (slot + 1) * slot_w + 0.1 * slot_w - bw)
    left = float(rng.uniform(lo, hi)) if hi > lo else max(0.0, min(width - bw, lo))
    if rng.rand() < 0.1:      # legs cut off by the bottom edge, as in many MPII photos
        top = height - bh * (1.0 - float(rng.uniform(0.12, 0.35)))
    else:
        top = float(rng.uniform(0.0, max(height - bh, 0.0)))
    offset = (left - unit * x0, top - unit * y0)
    return unit, offset, rotation


def _add_occluder(rng, image, part_map, joints, unit):
    """A foreground box or ellipse over part of a person (occluded joints get vis = 0)."""
    centre = joints[int(rng.randint(0, NUM_JOINTS))]
    colour = _random_colour(rng)
    axes = (unit * float(rng.uniform(0.6, 1.5)), unit * float(rng.uniform(0.5, 1.2)))
    angle = float(rng.uniform(0.0, 180.0))
    _ellipse(image, centre, axes, angle, colour, cv2.LINE_AA)
    _ellipse(part_map, centre, axes, angle, OCCLUDER, cv2.LINE_8)


def render_scene(seed, index, image_size=DEFAULT_IMAGE_SIZE, back_view_chance=0.1,
                 missing_chance=0.03):
    """Draw image ``index`` of the dataset generated with ``seed``; pure and repeatable.

    Each image has its own random stream, so any single image can be re-rendered
    (tests do) without generating the ones before it.
    """
    rng = np.random.RandomState([int(seed), int(index)])
    width, height = _image_size(rng, image_size)
    n_persons = 1 + int(rng.rand() < 0.3) + int(rng.rand() < 0.12)
    background = make_background(rng, width, height)
    image = background.copy()
    part_map = np.zeros((height, width), dtype=np.uint8)
    slots = list(rng.permutation(n_persons))   # left-to-right position of each figure
    drawn, units = [], []
    for slot in range(n_persons):
        pose = sample_pose(rng, back_view=bool(rng.rand() < back_view_chance))
        anchors = _body_anchors(rng, pose)
        names = ("torso", "eyes", "hands", "feet")
        body_points = list(pose["joints"]) + [anchors["head_centre"], anchors["hair_centre"]]
        for name in names:
            body_points += anchors[name]
        unit, offset, rotation = _place(rng, pose["joints"] + anchors["feet"], n_persons,
                                        int(slots[slot]), width, height)
        placed = _transform(body_points, rotation, unit, offset)
        joints = [_mpii_round(p) for p in placed[:NUM_JOINTS]]
        pts = {"joints": joints, "head_centre": placed[NUM_JOINTS],
               "hair_centre": placed[NUM_JOINTS + 1]}
        k = NUM_JOINTS + 2
        for name in names:
            pts[name] = placed[k:k + len(anchors[name])]
            k += len(anchors[name])
        head_angle = math.degrees(math.atan2(joints[HEAD_TOP][0] - joints[UPPER_NECK][0],
                                             joints[UPPER_NECK][1] - joints[HEAD_TOP][1]))
        draw_anchors = {"back_view": pose["back_view"], "head_angle": head_angle,
                        "foot_angle": rotation + anchors["foot_angle_body"]}
        _draw_person(rng, _Painter(image, part_map, slot), pts, draw_anchors, unit, image)
        drawn.append((joints, pose["back_view"]))
        units.append(unit)
    if rng.rand() < 0.15:
        victim = int(rng.randint(0, n_persons))
        _add_occluder(rng, image, part_map, drawn[victim][0], units[victim])
    persons = [_annotate(rng, joints, slot, back_view, part_map, missing_chance)
               for slot, (joints, back_view) in enumerate(drawn)]
    order = sorted(range(n_persons), key=lambda i: int(slots[i]))   # people left to right
    return DemoScene(image, background, part_map, [persons[i] for i in order])


def _annotate(rng, joints, slot, back_view, part_map, missing_chance):
    """MPII-style labels of one drawn figure: annotated/visible flags, scale, box, centre."""
    height, width = part_map.shape
    arr = np.array(joints, dtype=np.float64)
    inside = ((arr[:, 0] >= 0) & (arr[:, 0] <= width - 1) &
              (arr[:, 1] >= 0) & (arr[:, 1] <= height - 1))
    dropped = rng.rand(NUM_JOINTS) < missing_chance
    dropped[[UPPER_NECK, HEAD_TOP]] = False   # MPII derives both from the head box
    annotated = inside & ~dropped
    visible = np.zeros(NUM_JOINTS, dtype=bool)
    for j in np.flatnonzero(annotated):
        value = int(part_map[int(round(arr[j, 1])), int(round(arr[j, 0]))])
        own = value // PARTS_PER_PERSON == slot and value != OCCLUDER
        visible[j] = own and value % PARTS_PER_PERSON in JOINT_PARTS[j]
    one_based = arr + 1.0
    segment = float(np.hypot(*(one_based[HEAD_TOP] - one_based[UPPER_NECK])))
    scale = round(6.0 * segment / 200.0, 3)
    mid = (one_based[HEAD_TOP] + one_based[UPPER_NECK]) / 2.0
    box_h = 1.25 * segment / math.sqrt(1.0 + 0.78 ** 2)   # head box: w / h = 0.78
    box_w = 0.78 * box_h
    head_box = np.array([mid[0] - box_w / 2, mid[1] - box_h / 2,
                         mid[0] + box_w / 2, mid[1] + box_h / 2])
    centre = (one_based.min(axis=0) + one_based.max(axis=0)) / 2.0
    jitter = rng.normal(0.0, 0.03, size=2) * 200.0 * scale
    objpos = np.rint(centre + jitter + np.array([0.0, -0.04 * 200.0 * scale]))
    return DemoPerson(arr, annotated, visible, scale, objpos, head_box, slot, back_view)


# ------------------------------------------------------------------------ annotations
def _num(value):
    text = "%.3f" % value
    return "0.000" if text == "-0.000" else text


def _joint_list(person):
    rows = []
    for j in range(NUM_JOINTS):
        if person.annotated[j]:
            x, y = person.joints[j] + 1.0
            rows.append("[%s,%s,%s]" % (_num(x), _num(y), _num(float(person.visible[j]))))
        else:
            rows.append("[0.000,0.000,0.000]")
    return "[" + ",".join(rows) + "]"


def _point(p):
    return "[%s,%s]" % (_num(p[0]), _num(p[1]))


def annotation_row(person, others, image_name, width, height, annolist_index,
                   people_index, is_validation):
    """One person's line of mpii_annotations.json, formatted like the real file."""
    if not others:
        joint_others = scale_other = objpos_other = _JSONLAB_EMPTY
    elif len(others) == 1:  # the real file unwraps single-element lists
        joint_others, scale_other = _joint_list(others[0]), _num(others[0].scale)
        objpos_other = _point(others[0].objpos)
    else:
        joint_others = "[" + ",".join(_joint_list(o) for o in others) + "]"
        scale_other = "[" + ",".join(_num(o.scale) for o in others) + "]"
        objpos_other = "[" + ",".join(_point(o.objpos) for o in others) + "]"
    values = ('"MPI"', _num(1.0 if is_validation else 0.0), json.dumps(image_name),
              _num(width), _num(height), _point(person.objpos), _joint_list(person),
              _num(person.scale), joint_others, scale_other, objpos_other,
              _num(annolist_index), _num(people_index), _num(len(others)))
    return "{" + ",".join('"%s": %s' % kv for kv in zip(JSON_KEYS, values)) + "}"


def scene_annotations(scene, image_name, annolist_index, is_validation):
    """The JSON lines of one image: its annotation rows and its head_boxes.json entries."""
    height, width = scene.image.shape[:2]
    rows, boxes = [], []
    for k, person in enumerate(scene.persons):
        others = scene.persons[:k] + scene.persons[k + 1:]
        rows.append(annotation_row(person, others, image_name, width, height,
                                   annolist_index, k + 1, is_validation))
        boxes.append('"%s": [%s]' % (head_box_key(annolist_index, k + 1),
                                     ",".join(_num(v) for v in person.head_box)))
    return rows, boxes


def annolist_index_of(index):
    """The 1-based annolist index of the demo's ``index``-th (0-based) image."""
    return ANNOLIST_BASE + index + 1


def demo_image_name(annolist_index):
    """File name (inside images/) of the demo image with this 1-based annolist index."""
    return _IMAGE_NAME % annolist_index


def head_box_key(annolist_index, people_index):
    """Key of a person in head_boxes.json: "annolist_index,people_index" (1-based)."""
    return "%d,%d" % (annolist_index, people_index)


# ----------------------------------------------------------------------------- writing
def _sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 16), b""):
            digest.update(block)
    return digest.hexdigest()


def _write_bytes(path, data):
    with open(path, "wb") as f:
        f.write(data)


def encode_jpeg(image):
    """JPEG bytes of a BGR image at the demo's fixed quality (no timestamps, no EXIF)."""
    ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:
        raise ValueError("cv2 could not encode a %s image as JPEG" % (image.shape,))
    return buf.tobytes()


def generate_demo_dataset(out_dir, n_train_images=DEFAULT_TRAIN_IMAGES,
                          n_val_images=DEFAULT_VAL_IMAGES, seed=DEFAULT_SEED,
                          image_size=DEFAULT_IMAGE_SIZE):
    """Write the demo dataset under ``out_dir`` and return a summary dict.

    Layout: ``images/demo_NNNNNN.jpg`` (NNNNNN = annolist_index), ``annotations/
    mpii_annotations.json`` (real MPII JSON key set), ``annotations/head_boxes.json``
    ("annolist_index,people_index" -> [x1, y1, x2, y2], the head boxes PCKh needs and the
    real JSON lacks) and ``SHA256SUMS``. Same arguments -> byte-identical files. Stale
    ``demo_*.jpg`` files from an earlier, larger generation are removed.
    """
    n_train_images, n_val_images = int(n_train_images), int(n_val_images)
    if n_train_images < 1 or n_val_images < 1:
        raise ValueError("demo dataset needs at least one train and one val image, got "
                         "%d and %d" % (n_train_images, n_val_images))
    (w0, h0), (w1, h1) = image_size
    if not (32 <= w0 <= w1 and 32 <= h0 <= h1):
        raise ValueError("image_size must be ((min_w, min_h), (max_w, max_h)) with sides "
                         ">= 32, got %r" % (image_size,))
    image_dir = os.path.join(out_dir, IMAGE_DIR)
    for sub in (image_dir, os.path.join(out_dir, "annotations")):
        ensure_dir(sub)
    rows, head_boxes, written = [], [], set()
    counts = {"train": 0, "val": 0}
    for index in range(n_train_images + n_val_images):
        scene = render_scene(seed, index, image_size)
        annolist_index = annolist_index_of(index)
        name = demo_image_name(annolist_index)
        _write_bytes(os.path.join(image_dir, name), encode_jpeg(scene.image))
        written.add(name)
        is_val = index >= n_train_images
        scene_rows, scene_boxes = scene_annotations(scene, name, annolist_index, is_val)
        rows += scene_rows
        head_boxes += scene_boxes
        counts["val" if is_val else "train"] += len(scene_rows)
    for stale in os.listdir(image_dir):
        if _IMAGE_NAME_RE.match(stale) and stale not in written:
            os.remove(os.path.join(image_dir, stale))
    _write_bytes(os.path.join(out_dir, ANNOTATION_FILE),
                 ("[\n" + ",\n".join(rows) + "\n]\n").encode("ascii"))
    _write_bytes(os.path.join(out_dir, HEAD_BOX_FILE),
                 ("{\n" + ",\n".join(head_boxes) + "\n}\n").encode("ascii"))
    files = [ANNOTATION_FILE, HEAD_BOX_FILE] + [os.path.join(IMAGE_DIR, n)
                                                for n in sorted(written)]
    sums = ["%s  %s" % (_sha256(os.path.join(out_dir, f)), f.replace(os.sep, "/"))
            for f in files]
    _write_bytes(os.path.join(out_dir, CHECKSUM_FILE), ("\n".join(sums) + "\n").encode("ascii"))
    return {"out_dir": out_dir, "images": len(written), "train_persons": counts["train"],
            "val_persons": counts["val"], "seed": seed}


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m hgpipe.data.demo",
        description="Generate the deterministic demo dataset in MPII JSON format.")
    parser.add_argument("out_dir")
    parser.add_argument("--train-images", type=int, default=DEFAULT_TRAIN_IMAGES)
    parser.add_argument("--val-images", type=int, default=DEFAULT_VAL_IMAGES)
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    args = parser.parse_args(argv)
    try:
        summary = generate_demo_dataset(args.out_dir, args.train_images, args.val_images,
                                        args.seed)
    except ValueError as exc:
        parser.error(str(exc))
    print("wrote %(images)d images, %(train_persons)d train + %(val_persons)d val persons "
          "to %(out_dir)s (seed %(seed)d)" % summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
