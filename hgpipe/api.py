"""The Python API: what ``import hgpipe`` offers a notebook, and what the commands call.

    import hgpipe
    hgpipe.prepare("data/demo", "runs/nb/shards", config="configs/tiny.cfg")
    summary = hgpipe.train_model("runs/nb/shards", "runs/nb/train", config="configs/tiny.cfg")
    results = hgpipe.evaluate("runs/nb/train", "runs/nb/shards")
    with hgpipe.load("runs/nb/train") as model:
        pose = model.predict(frame, color="rgb")          # one person, whole frame
        poses = model.predict_many(frames, color="bgr", boxes=[(x1, y1, x2, y2), None])

(``train_model``, not ``train``: ``hgpipe.train`` is the package that holds the trainer.)
Each function is the one its command runs (``hgpipe prepare``, ``train``, ``pck
--checkpoint``, ``predict``), with the same arguments, so results are the same to the
digit. TensorFlow is imported when a model is built or trained, never by ``import
hgpipe``. Bad input raises ``ValueError`` with the one-line message the command prints.
"""
import os

from hgpipe.config import Config, load_config

DEFAULT_BATCH_SIZE = 16  # crops per model run when predicting


def _config(config, overrides=()):
    """A Config from a path, a Config (overrides applied to a copy) or None (defaults)."""
    if isinstance(config, Config):
        if not overrides:
            return config
        cfg = Config(config.as_dict(), config.sources)  # a copy: the caller's stays
        for item in overrides:
            name, sep, value = item.partition("=")
            section, dot, key = name.partition(".")
            if not sep or not dot:
                raise ValueError("override %r: expected Section.key=value" % (item,))
            cfg.set(section.strip(), key.strip(), value, origin="override %s" % name)
        cfg.check("config with overrides")
        return cfg
    return load_config(os.fspath(config) if config is not None else None, overrides)


# --------------------------------------------------------------------------- pipeline

def prepare(mpii_dir, out_dir, config=None, overrides=(), annotations=None, workers=None,
            overwrite=False, echo=print, progress=None):
    """``hgpipe prepare``: annotations + images -> shards; returns the manifest dict.

    ``annotations``: None (found in ``mpii_dir``), one annotation file or a list of them
    (e.g. separate train and val JSONs; a person in two is kept from the first).
    ``progress(total)`` gives a context manager with
    ``update(n)`` (a tqdm bar); None shows none.
    """
    from hgpipe.data.prepare import prepare_dataset
    return prepare_dataset(_config(config, overrides), mpii_dir, out_dir, annotations,
                           workers or os.cpu_count() or 1, overwrite, echo=echo,
                           progress=progress)


def train_model(data_dir, logdir, config, overrides=(), steps=None, device=None, resume=True,
                input_mode="feed", distributed=None, echo=print, progress=False,
                resume_from=None, notes=()):
    """``hgpipe train``: returns the summary dict (also ``LOGDIR/train_summary.json``).

    ``config`` is required (a path or a Config): the defaults describe the paper's
    4-stack, 256-feature network trained for 200,000 steps, which nobody wants by
    accident (the command passes its built-in-defaults Config explicitly, after printing
    ``notes`` saying so). ``progress``: a tqdm bar when stderr is a terminal (the
    command's choice), else plain step lines. ``resume_from``: a checkpoint of
    ``logdir`` to resume instead of its latest. Raises
    :class:`hgpipe.train.trainer.TrainingError` when training cannot start or had to
    stop.
    """
    if config is None:
        raise ValueError("train needs a config (e.g. configs/tiny.cfg or a recipe in "
                         "configs/): the defaults are the paper's 4 x 256 network for "
                         "200,000 steps")
    from hgpipe.data.shards import load_manifest
    cfg = _config(config, overrides)
    load_manifest(data_dir)  # a wrong data_dir fails here, before TensorFlow loads
    if cfg["Train"]["deterministic"]:
        from hgpipe.train.determinism import request_op_determinism
        request_op_determinism()  # TensorFlow reads it once, at import
    from hgpipe.train.trainer import Trainer
    return Trainer(cfg, data_dir, logdir, device=device, steps=steps, resume=resume,
                   input_mode=input_mode, echo=echo, progress=progress,
                   distributed_backend=distributed, resume_from=resume_from,
                   notes=notes).run()


def evaluate(checkpoint, data_dir, config=None, flip=False, batch_size=None, out=None,
             conventions=("tompson", "mpii"), threshold=0.5, gt=None, echo=print, **report):
    """``hgpipe pck --checkpoint``: predict the val shards of ``data_dir``, write the
    predictions file (default ``predictions-val.h5`` beside the checkpoint), score PCKh.

    Returns the list of :class:`hgpipe.eval.pckh.PCKhResult` (one per convention);
    ``results[0].columns["Mean"]`` is the Tompson-table mean. Shards of another keypoint
    set (LSP, a COCO-format file's) are scored by its metric instead: a list of one
    :class:`hgpipe.eval.keypoint_metrics.KeypointScore` (``.total``: PCK@0.2 of the
    torso or OKS AP, in percent). ``report`` passes ``json_path``, ``plot_path``,
    ``markdown`` on to the printed report.
    """
    from hgpipe.eval.evaluate import evaluate_checkpoint
    return evaluate_checkpoint(checkpoint, data_dir, config, flip, batch_size, out,
                               conventions, threshold, gt, echo=echo, **report)


# --------------------------------------------------------------------------- prediction

class Model(object):
    """A loaded network for prediction (:func:`load`); close it or use ``with``."""

    def __init__(self, loaded, batch_size):
        self._loaded = loaded
        self.batch_size = batch_size
        self.checkpoint = loaded.checkpoint
        self.config = loaded.cfg
        self.input_size = loaded.input_size
        self.keypoints = loaded.keypoints   # whose joints it predicts (hgpipe.joints)

    def predict(self, image, color, box=None, flip=False):
        """The :class:`~hgpipe.eval.batch_predict.Pose` of the one person in ``image``.

        ``image``: uint8 (H, W, 3) array; ``color``: its channel order, ``"rgb"`` (PIL,
        imageio, matplotlib) or ``"bgr"`` (cv2.imread); there is no default, because the
        wrong one silently gives other joints. ``box``: None (the whole image), (x1, y1,
        x2, y2) in 1-based pixels, or a PersonBox (e.g.
        ``hgpipe.eval.predict.box_from_center_scale`` for raw MPII objpos/scale).
        """
        return self.predict_many([image], color, [box], flip)[0]

    def predict_many(self, images, color, boxes=None, flip=False):
        """Poses of many images (one person each; an image may repeat with other boxes),
        run in batches of ``batch_size`` crops. ``boxes``: None or one entry per image."""
        from hgpipe.eval import batch_predict
        images = list(images)
        boxes = [None] * len(images) if boxes is None else list(boxes)
        if len(boxes) != len(images):
            raise ValueError("%d images but %d boxes" % (len(images), len(boxes)))
        items = []
        for k, (image, box) in enumerate(zip(images, boxes)):
            bgr = batch_predict.as_bgr(image, color)
            items.append((bgr, batch_predict.person_box(bgr.shape, box, "image %d" % k)))
        return batch_predict.predict_crops(self._loaded, items, self.batch_size, flip)

    def heatmaps(self, crops):
        """Raw final-stack heatmaps of RGB uint8 crops (N, S, S, 3)."""
        from hgpipe.eval.inference import run_batched
        return run_batched(self._loaded.run, crops, self.batch_size)

    def close(self):
        self._loaded.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def load(checkpoint, config=None, batch_size=DEFAULT_BATCH_SIZE):
    """A trained or imported logdir (its latest checkpoint) or a checkpoint prefix ->
    :class:`Model`. ``config``: the file it was trained with (default: ``config.ini``
    beside it). ``batch_size`` crops go through the network per run (the last batch
    padded: one graph shape, as accelerators want)."""
    from hgpipe.eval.checkpoint import open_checkpoint
    if int(batch_size) < 1:
        raise ValueError("batch_size must be >= 1, got %r" % (batch_size,))
    return Model(open_checkpoint(os.fspath(checkpoint),
                                 os.fspath(config) if config else None, int(batch_size)),
                 int(batch_size))


def predict_files(model, inputs, out_dir, box=None, detections=None, min_detection_score=0.0,
                  flip=False, draw=False, min_score=0.3, on_skip=None, progress=None):
    """``hgpipe predict``: image files, folders and videos -> ``OUT/predictions.jsonl``
    (and with ``draw`` the annotated images/videos). ``model``: a :class:`Model`.
    ``detections``: a COCO results file of person boxes. Returns the summary dict; its
    ``failures`` list the inputs skipped and why."""
    from hgpipe.eval import detections as dets, media
    from hgpipe.eval.predict_run import PredictRun
    sources = media.expand_inputs(inputs)
    found = dets.read_detections(detections, min_detection_score) if detections else None
    if progress is not None:
        progress = progress(sum(media.frame_count(s) for s in sources))
    return PredictRun(model._loaded, sources, out_dir, box, found, flip, model.batch_size,
                      draw, min_score, on_skip, progress).run()
