"""PNG of PCKh curves drawn with OpenCV alone (matplotlib is not a dependency).

One line per column of the result (Head, Sho, ..., and the summary Mean/Total drawn
thicker), axes with ticks, grid, labels and a legend with each curve's AUC.
"""
import cv2
import numpy as np

from hgpipe import atomic

WIDTH, HEIGHT = 900, 620
MARGIN_LEFT, MARGIN_RIGHT, MARGIN_TOP, MARGIN_BOTTOM = 80, 200, 50, 70
FONT = cv2.FONT_HERSHEY_SIMPLEX
BLACK, GREY, WHITE = (0, 0, 0), (215, 215, 215), (255, 255, 255)
# BGR, distinguishable on white; the summary curve is always black.
PALETTE = ((180, 119, 31), (14, 127, 255), (44, 160, 44), (40, 39, 214),
           (189, 103, 148), (75, 86, 140), (194, 119, 227), (127, 127, 127),
           (34, 189, 188), (207, 190, 23))


def render_pckh_curves(result, title=None):
    """Draw ``result.curves`` on a white BGR uint8 image and return it."""
    image = np.full((HEIGHT, WIDTH, 3), 255, np.uint8)
    x0, x1 = MARGIN_LEFT, WIDTH - MARGIN_RIGHT
    y0, y1 = HEIGHT - MARGIN_BOTTOM, MARGIN_TOP  # y0 = bottom (0 %), y1 = top (100 %)
    thresholds = np.asarray(result.curve_thresholds, dtype=np.float64)
    t_min, t_max = float(thresholds[0]), float(thresholds[-1])
    if t_max <= t_min:
        t_max = t_min + 1.0

    def to_px(t, pck):
        px = x0 + (np.asarray(t) - t_min) / (t_max - t_min) * (x1 - x0)
        py = y0 - np.clip(np.asarray(pck), 0, 100) / 100.0 * (y0 - y1)
        return px, py

    for k in range(11):  # grid and y ticks every 10 %
        _, py = to_px(t_min, 10.0 * k)
        py = int(round(float(py)))
        cv2.line(image, (x0, py), (x1, py), GREY, 1)
        _text(image, "%d" % (10 * k), (x0 - 8, py + 5), align="right")
    for t in _ticks(t_min, t_max):
        px, _ = to_px(t, 0)
        px = int(round(float(px)))
        cv2.line(image, (px, y0), (px, y1), GREY, 1)
        _text(image, "%g" % (round(t, 4) + 0.0), (px, y0 + 22), align="center")
    cv2.rectangle(image, (x0, y1), (x1, y0), BLACK, 1)

    names = list(result.curves)
    for i, name in enumerate(names):
        summary = i == len(names) - 1
        color = BLACK if summary else PALETTE[i % len(PALETTE)]
        values = np.asarray(result.curves[name], dtype=np.float64)
        ok = np.isfinite(values)
        if ok.sum() >= 2:
            px, py = to_px(thresholds[ok], values[ok])
            points = np.round(np.stack([px, py], -1)).astype(np.int32).reshape(-1, 1, 2)
            cv2.polylines(image, [points], False, color, 3 if summary else 2, cv2.LINE_AA)
        ly = y1 + 10 + 26 * i
        cv2.line(image, (x1 + 15, ly), (x1 + 45, ly), color, 3 if summary else 2, cv2.LINE_AA)
        auc = result.auc.get(name, float("nan"))
        label = "%s (AUC %.1f)" % (name, auc) if np.isfinite(auc) else name
        _text(image, label, (x1 + 52, ly + 5))

    _text(image, "normalised distance (fraction of head size)", ((x0 + x1) // 2, HEIGHT - 18),
          align="center", scale=0.55)
    _vertical_text(image, "detection rate, %", (22, (y0 + y1) // 2))
    if title is None:
        title = "PCKh, %s convention (%s), %d persons" % (
            result.convention.name, "<" if result.convention.strict else "<=",
            result.num_persons)
    _text(image, title, ((x0 + x1) // 2, 30), align="center", scale=0.6)
    return image


def plot_pckh_curves(result, path, title=None):
    """Render and write a PNG atomically (temp file in the same folder, then rename)."""
    image = render_pckh_curves(result, title)
    ok, encoded = cv2.imencode(".png", image)
    if not ok:
        raise ValueError("%s: OpenCV could not encode the PNG" % path)
    atomic.write_bytes(path, encoded.tobytes())
    return path


def _ticks(t_min, t_max):
    step = 0.1 if t_max - t_min > 0.2 else 0.05
    start = np.ceil(t_min / step - 1e-9) * step
    return [float(t) for t in np.arange(start, t_max + step / 2, step)]


def _text(image, text, origin, align="left", scale=0.5, color=BLACK):
    (w, _), _ = cv2.getTextSize(text, FONT, scale, 1)
    x, y = origin
    if align == "center":
        x -= w // 2
    elif align == "right":
        x -= w
    cv2.putText(image, text, (int(x), int(y)), FONT, scale, color, 1, cv2.LINE_AA)


def _vertical_text(image, text, center, scale=0.55):
    """putText cannot rotate: draw on a strip, rotate it, and paste it."""
    (w, h), base = cv2.getTextSize(text, FONT, scale, 1)
    strip = np.full((h + base + 4, w + 4, 3), 255, np.uint8)
    cv2.putText(strip, text, (2, h + 2), FONT, scale, BLACK, 1, cv2.LINE_AA)
    strip = cv2.rotate(strip, cv2.ROTATE_90_COUNTERCLOCKWISE)
    sh, sw = strip.shape[:2]
    top = max(0, center[1] - sh // 2)
    left = max(0, center[0] - sw // 2)
    region = image[top:top + sh, left:left + sw]
    region[...] = np.minimum(region, strip[:region.shape[0], :region.shape[1]])
