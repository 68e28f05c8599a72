"""Drawing people and heatmaps for eyes: skeletons, heatmap overlays, montages, PNGs.

Used by ``hgpipe inspect`` (what training will see), ``hgpipe predict`` and the
TensorBoard image summaries; it depends on nothing but the keypoint set drawn (its
skeleton, and its right/left pairs for the colours; MPII unless given).
"""
import cv2
import numpy as np

from hgpipe import atomic
from hgpipe.joints import MPII

RIGHT_COLOR, LEFT_COLOR, MIDLINE_COLOR = (255, 80, 40), (40, 140, 255), (60, 220, 60)


def joint_color(joint, keypoints=MPII):
    """Right side warm, left side cool, midline green (RGB); sides from the set's
    flip pairs (right, left)."""
    if joint in keypoints.right_joints:
        return RIGHT_COLOR
    if joint in keypoints.left_joints:
        return LEFT_COLOR
    return MIDLINE_COLOR


def draw_skeleton(image_rgb, joints, mask=None, radius=3, thickness=2, keypoints=MPII):
    """Copy of ``image_rgb`` with ``keypoints``' limbs and joints drawn; joints (K, 2)
    in 0-based pixels. A limb takes the colour of its side (a midline-to-side limb the
    side's)."""
    canvas = np.ascontiguousarray(image_rgb).copy()
    k = keypoints.num_joints
    if np.shape(joints) != (k, 2):
        raise ValueError("draw_skeleton: %d %s joints expected, got shape %s"
                         % (k, keypoints.name, np.shape(joints)))
    mask = np.ones(k, bool) if mask is None else np.asarray(mask, bool)
    scale = 16  # sub-pixel drawing: cv2 takes fixed-point coordinates with `shift`
    points = np.rint(np.asarray(joints, np.float64) * scale).astype(np.int64)
    midline = keypoints.midline
    for a, b in keypoints.skeleton:
        if mask[a] and mask[b]:
            cv2.line(canvas, tuple(int(v) for v in points[a]), tuple(int(v) for v in points[b]),
                     joint_color(a if a not in midline else b, keypoints), thickness,
                     cv2.LINE_AA, shift=4)
    for j in range(k):
        if mask[j]:
            cv2.circle(canvas, tuple(int(v) for v in points[j]), radius * scale,
                       joint_color(j, keypoints), -1, cv2.LINE_AA, shift=4)
    return canvas


def heatmap_overlay(image_rgb, heatmaps, alpha=0.6):
    """The max over joints of float heatmaps (H, W, J) in [0, 1], colour-mapped over the
    image (resized to the image)."""
    peak = np.clip(np.max(heatmaps, axis=-1), 0.0, 1.0)
    peak = cv2.resize(peak.astype(np.float32), (image_rgb.shape[1], image_rgb.shape[0]),
                      interpolation=cv2.INTER_LINEAR)
    colored = cv2.applyColorMap((peak * 255).astype(np.uint8), cv2.COLORMAP_JET)[..., ::-1]
    weight = (alpha * peak)[..., None]
    return (image_rgb * (1.0 - weight) + colored * weight).astype(np.uint8)


def put_label(image_rgb, text, scale=0.4, margin=3):
    """Copy of ``image_rgb`` with ``text`` (lines split on newlines) in its top-left
    corner, white on a dark band, each line shrunk to fit the image width.

    One thin stroke on an opaque band, not a thick outline under a thin stroke: OpenCV
    advances each Hershey glyph by the stroke thickness, so a thick outline drifts away
    from the thin text along the line and the two overprint into a smudge.
    """
    canvas = np.ascontiguousarray(image_rgb).copy()
    font, y = cv2.FONT_HERSHEY_SIMPLEX, 0
    for line in text.split("\n"):
        (w, h), base = cv2.getTextSize(line, font, scale, 1)
        fit = min(scale, scale * (canvas.shape[1] - 2 * margin) / float(max(w, 1)))
        (w, h), base = cv2.getTextSize(line, font, fit, 1)
        top, bottom = y, y + h + base + 2 * margin
        band = canvas[top:bottom, :w + 2 * margin]
        band[...] = (band * 0.25).astype(np.uint8)
        cv2.putText(canvas, line, (margin, y + margin + h), font, fit, (255, 255, 255), 1,
                    cv2.LINE_AA)
        y = bottom
    return canvas


def montage(tiles, columns, pad=4, background=32):
    """Tiles of equal size in a grid."""
    if not tiles:
        raise ValueError("nothing to draw")
    h, w = tiles[0].shape[:2]
    rows = (len(tiles) + columns - 1) // columns
    sheet = np.full((rows * (h + pad) + pad, columns * (w + pad) + pad, 3), background, np.uint8)
    for i, tile in enumerate(tiles):
        r, c = divmod(i, columns)
        y, x = pad + r * (h + pad), pad + c * (w + pad)
        sheet[y:y + h, x:x + w] = tile
    return sheet


def write_png(path, image_rgb):
    """Write an RGB image as PNG atomically (temporary file, then rename)."""
    ok, data = cv2.imencode(".png", np.ascontiguousarray(image_rgb[..., ::-1]))
    if not ok:
        raise ValueError("%s: could not encode PNG" % path)
    atomic.write_bytes(path, data.tobytes())
