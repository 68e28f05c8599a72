"""``hgpipe predict`` over files, folders and videos with one loaded model.

Frames are read in order (:mod:`hgpipe.eval.media`), their person boxes found (the whole
frame, one given box, or a detector's boxes, :mod:`hgpipe.eval.detections`), and the
crops of up to ``batch_size`` persons run through the model together
(:func:`hgpipe.eval.batch_predict.predict_crops`). Everything goes to one JSON Lines
file, ``OUT/predictions.jsonl``: a line per person (image or frame, box, the model's
keypoint set's joints with scores: MPII's 16, or another set's with its name and
skeleton); on request the annotated images (``OUT/NAME.pose.png``) or videos
(``OUT/NAME.pose.mp4``).

A bad input does not stop the run: an image that cannot be decoded, a video that cannot
be opened, or a box that cannot be right is skipped with its reason (``on_skip``), the
rest goes on, and the returned summary lists every failure (the command then exits
non-zero). Each output file is written under a temporary name and renamed complete.
"""
import os
import time

from hgpipe import draw
from hgpipe.atomic import atomic_path, ensure_dir
from hgpipe.data.images import ImageError
from hgpipe.eval import batch_predict, detections as dets, media, predict

JSONL_NAME = "predictions.jsonl"


class _NoProgress(object):
    def update(self, n=1):
        pass

    def close(self):
        pass


def drawn_paths(out_dir, sources):
    """{source path: annotated output path}; raises ValueError when two inputs would
    write the same file (before the model is loaded)."""
    paths, seen = {}, {}
    for source in sources:
        stem = os.path.splitext(os.path.basename(source.path))[0]
        ext = ".png" if source.kind == "image" else (
            os.path.splitext(source.path)[1].lower()
            if os.path.splitext(source.path)[1].lower() in media.VideoOutput.FOURCC
            else ".mp4")
        out = os.path.join(out_dir, stem + ".pose" + ext)
        if out in seen:
            raise ValueError("%s and %s would both write %s; predict them into different "
                             "--out folders" % (seen[out], source.path, out))
        seen[out] = source.path
        paths[source.path] = out
    return paths


class PredictRun(object):
    """One pass over ``sources``; :meth:`run` returns the summary dict.

    ``box``: None (each whole frame), a PersonBox or (x1, y1, x2, y2) for every frame;
    ``detections``: the dict of :func:`hgpipe.eval.detections.read_detections` instead.
    """

    def __init__(self, model, sources, out_dir, box=None, detections=None, flip=False,
                 batch_size=16, draw_outputs=False, min_score=0.3, on_skip=None,
                 progress=None):
        self.model, self.sources, self.out_dir = model, list(sources), out_dir
        self.box, self.detections, self.flip = box, detections, flip
        self.batch_size, self.min_score = int(batch_size), float(min_score)
        self.drawn = drawn_paths(out_dir, self.sources) if draw_outputs else None
        self.on_skip = on_skip or (lambda name, reason: None)
        self.progress = progress
        self.single_video = sum(s.kind == "video" for s in self.sources) == 1
        self.failures, self.crowded, self.persons, self.frames = [], 0, 0, 0
        self.too_small = 0  # poses much smaller than their box (batch_predict.scale_note)
        self.without_person = 0
        self._video, self._out = None, None
        self.written = []  # annotated files complete on disk

    # ------------------------------------------------------------------ boxes
    def _boxes(self, frame):
        """[(PersonBox, detection score or None, others inside)] of one frame."""
        if self.detections is None:
            return [(batch_predict.person_box(frame.image.shape, self.box, frame.name),
                     None, 0)]
        keys = dets.image_keys(frame.source.path) if frame.index is None else \
            dets.frame_keys(frame.source.path, frame.index, self.single_video)
        found = dets.boxes_for(self.detections, keys)
        boxes = []
        for (x1, y1, x2, y2, score), inside in zip(found, dets.crowded(found)):
            boxes.append((batch_predict.person_box(frame.image.shape, (x1, y1, x2, y2),
                                                   frame.name), score, inside))
        return boxes

    def _frames(self):
        """Every readable frame; a source that cannot be read is a failure, then the
        next source."""
        for source in self.sources:
            try:
                for frame in media.read_frames(source):
                    yield frame
            except ImageError as exc:
                self._fail(source.path, exc.problem)
                if self.progress is not None and source.kind == "image":
                    self.progress.update(1)

    def _fail(self, name, reason):
        self.failures.append({"input": name, "reason": reason})
        self.on_skip(name, reason)

    # ------------------------------------------------------------------ the pass
    def run(self):
        started = time.time()
        self.progress = self.progress or _NoProgress()
        ensure_dir(self.out_dir)
        jsonl_path = os.path.join(self.out_dir, JSONL_NAME)
        complete = False
        try:
            with atomic_path(jsonl_path) as tmp:
                with open(tmp, "w") as self._out:
                    chunk, persons = [], 0
                    for frame in self._frames():
                        try:
                            boxes = self._boxes(frame)
                        except ValueError as exc:
                            self._fail(frame.name, _reason(exc, frame.name))
                            self.progress.update(1)
                            continue
                        chunk.append((frame, boxes))
                        persons += len(boxes)
                        if persons >= self.batch_size or len(chunk) >= self.batch_size:
                            self._process(chunk)
                            chunk, persons = [], 0
                    self._process(chunk)
                if not self.persons:  # nothing predicted: no empty file left behind
                    raise _NothingWritten()
            complete = True
        except _NothingWritten:
            jsonl_path = None
        finally:
            self._close_video(complete)
            self.progress.close()
        seconds = time.time() - started
        return {"jsonl": jsonl_path, "frames": self.frames, "persons": self.persons,
                "frames_without_person": self.without_person, "crowded": self.crowded,
                "too_small": self.too_small,
                "failures": self.failures, "seconds": seconds,
                "frames_per_sec": self.frames / seconds if seconds > 0 else 0.0,
                "drawn": self.written}

    def _process(self, chunk):
        items = [(frame.image, box) for frame, boxes in chunk for box, _, _ in boxes]
        poses = iter(batch_predict.predict_crops(self.model, items, self.batch_size,
                                                 self.flip))
        for frame, boxes in chunk:
            frame_poses = [next(poses) for _ in boxes]
            try:
                self._write_frame(frame, boxes, frame_poses)
            except (OSError, IOError, ValueError) as exc:
                self._fail(frame.name, _reason(exc, frame.name))
            self.progress.update(1)

    def _write_frame(self, frame, boxes, poses):
        if self.drawn is not None:  # the drawing first: a failure leaves no JSON line
            canvas = batch_predict.draw_poses(frame.image, poses, self.min_score)
            target = self.drawn[frame.source.path]
            if frame.index is None:
                draw.write_png(target, canvas[..., ::-1])
                self.written.append(target)
            else:
                if self._video is None or self._video.path != target:
                    self._close_video(True)
                    self._video = media.VideoOutput(target, media.video_fps(frame.source))
                self._video.write(canvas)
        self.frames += 1
        if not boxes:
            self.without_person += 1
        for k, ((box, score, inside), pose) in enumerate(zip(boxes, poses)):
            record = {"image": frame.name, "source": frame.source.path,
                      "frame": frame.index, "person": k}
            record.update(pose.to_dict())
            record["flip_test"] = bool(self.flip)
            record["checkpoint"] = self.model.checkpoint
            if score is not None:
                record["detection_score"] = float(score)
            notes = []
            if inside:
                self.crowded += 1
                notes.append("this box holds %d other detected person%s: the model "
                             "sees one person per crop, its joints may mix them"
                             % (inside, "" if inside == 1 else "s"))
            fraction = batch_predict.person_fraction(pose, self.min_score)
            record["person_fraction"] = None if fraction is None else round(fraction, 3)
            scale = batch_predict.scale_note(fraction)
            if scale:
                self.too_small += 1
                notes.append(scale)
            if notes:
                record["note"] = "; ".join(notes)
            self._out.write(batch_predict.jsonl_line(record))
            self.persons += 1

    def _close_video(self, complete):
        if self._video is not None:
            self._video.close(complete)
            if complete and self._video.frames:
                self.written.append(self._video.path)
            self._video = None


class _NothingWritten(Exception):
    pass


def _reason(exc, name):
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc)
    if isinstance(exc, (OSError, IOError)) and getattr(exc, "filename", None):
        text = "%s: %s" % (exc.filename, exc.strerror or text)
    prefix = "%s: " % name
    return text[len(prefix):] if text.startswith(prefix) else text


def predict_box_from_options(center=None, scale=None, bbox=None):
    """The one box given (raw MPII centre + scale, or x1 y1 x2 y2), or None."""
    if bbox:
        return predict.box_from_bbox(*bbox)
    if center is not None:
        return predict.box_from_center_scale(center, scale)
    return None
