"""PCKh of a checkpoint on the val shards, and the PCKh report both ways of ``pck`` print.

``hgpipe pck --checkpoint``, :func:`hgpipe.evaluate` and the README's tables all come
from :func:`evaluate_checkpoint`: run the checkpoint's network over the val shards (the
stored crops, optionally with the flip test), map the heatmap peaks to original image
pixels with each crop's stored ``crop_to_image``, write the predictions file (default:
beside the checkpoint), then score it (:func:`report_pckh`) against the shards' ground
truth or another ground-truth file.

The shards' keypoint set (their manifest's, :func:`hgpipe.data.schema.keypoints_of`)
decides the score: MPII's ``pckh`` is the path above, unchanged; ``pck_torso`` (LSP)
and ``oks`` (COCO-format sets) go through :func:`score_predictions`
(:mod:`hgpipe.eval.keypoint_metrics`) and :func:`report_keypoints`. The checkpoint's
logdir must have trained on the same set (:func:`hgpipe.eval.checkpoint.checkpoint_keypoints`).
"""
import math
import os

import numpy as np

from hgpipe import atomic
from hgpipe.eval import keypoint_metrics, pckh
from hgpipe.eval.pred_files import (
    EvalFileError, Predictions, check_compatible, load_keypoint_predictions,
    read_ground_truth, read_keypoint_ground_truth, write_predictions)
from hgpipe.joints import MPII

CONVENTION_CHOICES = tuple(pckh.CONVENTIONS) + ("both",)
DEFAULT_PREDICTIONS_NAME = "predictions-val.h5"  # written beside the checkpoint


def conventions_for(choice):
    """'tompson' | 'mpii' | 'both' -> tuple of convention names, in table order."""
    return tuple(pckh.CONVENTIONS) if choice == "both" else (choice,)


def report_pckh(preds, gt, conventions=("tompson",), threshold=0.5, json_path=None,
                plot_path=None, label="", markdown=True, echo=print):
    """Score ``preds`` against ``gt`` under each convention, print, and optionally save.

    ``preds`` is an (N, 16, 2) array of 1-based image pixels or a ``Predictions``.  The
    plot shows the first convention's curves.  Returns the list of ``PCKhResult``.
    """
    check_compatible(preds, gt)
    coords = preds.coords if isinstance(preds, Predictions) else preds
    results = [pckh.score_pckh(coords, gt, name, threshold) for name in conventions]
    echo("ground truth: %s (%d persons)" % (gt.source or "in memory", gt.num_persons))
    notes = list(preds.notes) if isinstance(preds, Predictions) else []
    not_finite = int(np.sum(~np.all(np.isfinite(coords), axis=-1)))
    if not_finite:
        notes.append("%d of %d predicted joints are not finite (NaN/Inf): scored as misses"
                     % (not_finite, coords.shape[0] * coords.shape[1]))
    for note in list(gt.notes) + notes:
        echo("note: " + note)
    for result in results:
        echo("convention %s: %s" % (result.convention.name, result.convention.description))
    echo("")
    echo(pckh.format_table(results, markdown=markdown, label=label))
    echo("")
    for result in results:
        echo(pckh.format_joint_counts(result))
    if json_path:
        atomic.write_json(json_path, sort_keys=False, payload={
            "predictions": label,
            "ground_truth": gt.source,
            "num_persons": gt.num_persons,
            "results": [r.to_dict() for r in results],
        })
        echo("wrote %s" % json_path)
    if plot_path:
        from hgpipe.eval.plot import plot_pckh_curves  # cv2 only when a plot is asked for
        plot_pckh_curves(results[0], plot_path)
        echo("wrote %s" % plot_path)
    return results


def evaluate_checkpoint(checkpoint, data_dir, config_path=None, flip=False, batch_size=None,
                        out_path=None, conventions=("tompson", "mpii"), threshold=0.5,
                        gt_path=None, echo=print, **report):
    """Predict the val shards with ``checkpoint``, write the predictions, print and
    return the PCKh results (see module); for shards of another keypoint set, a list
    of one :class:`hgpipe.eval.keypoint_metrics.KeypointScore` of its metric."""
    keypoints = shards_keypoints(data_dir)
    if keypoints != MPII:
        return evaluate_keypoints(checkpoint, data_dir, keypoints, config_path, flip,
                                  batch_size, out_path, gt_path, echo=echo, **report)
    shards_gt = read_ground_truth(data_dir)  # fails early, before the model is built
    preds, label = predict_checkpoint(checkpoint, data_dir, shards_gt, config_path, flip,
                                      batch_size, out_path, echo)
    gt = read_ground_truth(gt_path) if gt_path else shards_gt
    return report_pckh(preds, gt, tuple(conventions), threshold, label=label, echo=echo,
                       **report)


def predict_checkpoint(checkpoint, data_dir, shards_gt, config_path, flip, batch_size,
                       out_path, echo=print):
    """Run the checkpoint over the val shards, write the predictions file (with the
    shards' person ids), return (Predictions, table label)."""
    from hgpipe.eval.checkpoint import load_checkpoint_config, load_model, resolve_checkpoint
    from hgpipe.eval.predict import predict_shards

    prefix = resolve_checkpoint(checkpoint)
    cfg = load_checkpoint_config(prefix, config_path)
    batch_size = batch_size or cfg["Train"]["batch_size"]
    out_path = out_path or os.path.join(os.path.dirname(prefix) or ".",
                                        DEFAULT_PREDICTIONS_NAME)
    with load_model(prefix, cfg, batch_size) as model:
        check_same_set(prefix, model.keypoints, data_dir, MPII)
        echo("model: %s (%d px input, batch %d, flip test %s)" % (
            prefix, model.input_size, batch_size, "on" if flip else "off"))
        coords, _ = predict_shards(model, data_dir, flip)
    write_predictions(out_path, coords, shards_gt.annolist_index, shards_gt.person_index,
                      attrs={"checkpoint": prefix, "shards": data_dir, "flip_test": flip})
    echo("predictions: %s (%d persons)" % (out_path, len(coords)))
    return (Predictions(coords, out_path, shards_gt.annolist_index, shards_gt.person_index),
            short_name(prefix))


def short_name(path):
    return os.path.basename(path.rstrip("/\\")) or path


# --------------------------------------------------------------------------- other sets

METRIC_NAMES = {"pckh": "PCKh (head-box normaliser)",
                "pck_torso": "PCK@%g of the torso" % keypoint_metrics.PCK_TORSO_THRESHOLD,
                "oks": "OKS AP (COCOeval, ground-truth boxes)"}


def shards_keypoints(data_dir):
    """The keypoint set of ``data_dir``'s manifest; MPII when there is no readable
    manifest (the MPII path then reports the problem as it always did)."""
    from hgpipe.data import schema, shards
    if not os.path.isfile(os.path.join(data_dir, shards.MANIFEST)):
        return MPII
    try:
        return schema.keypoints_of(shards.load_manifest(data_dir))
    except (shards.ShardError, ValueError):
        return MPII


def check_same_set(checkpoint, model_keypoints, data_dir, shards_set):
    """One line when the checkpoint trained on another keypoint set than the shards'."""
    if model_keypoints != shards_set:
        raise EvalFileError(
            "%s: trained on the %s keypoint set (%d joints), but %s holds %s (%d joints); "
            "evaluate it on shards of its own set" % (
                checkpoint, model_keypoints.name, model_keypoints.num_joints, data_dir,
                shards_set.name, shards_set.num_joints))


def check_gt_for_set(gt_path, keypoints):
    """``--gt`` for a keypoint set other than MPII: only a shards directory of the same
    set can be its ground truth (the MPII files hold MPII's 16 joints and head boxes)."""
    other = shards_keypoints(gt_path) if os.path.isdir(gt_path) else None
    if other != keypoints:
        raise EvalFileError(
            "%s: the shards hold the %s keypoint set (%d joints, scored by %s); --gt %s "
            "give a shards directory of that set, or leave --gt out (the shards' own val "
            "persons)" % (gt_path, keypoints.name, keypoints.num_joints, keypoints.metric,
                          "is MPII ground truth (PCKh of MPII's 16 joints):"
                          if other in (None, MPII) else "holds the %s set:" % other.name))


def score_predictions(coords, scores, gt):
    """``coords`` (N, K, 2) 1-based image pixels and ``scores`` (N, K) heatmap peaks of
    the persons of ``gt`` (:class:`hgpipe.eval.pred_files.KeypointGroundTruth`), scored
    by its set's metric: a :class:`hgpipe.eval.keypoint_metrics.KeypointScore`."""
    keypoints = gt.keypoints
    coords = np.asarray(coords, dtype=np.float64)
    if coords.shape != gt.joints.shape:
        raise EvalFileError("%s: %s predictions for ground truth %s" % (
            gt.source or "ground truth", coords.shape, gt.joints.shape))
    if keypoints.metric == "pck_torso":
        return keypoint_metrics.pck_torso(coords, gt.joints, gt.annotated, keypoints.torso)
    if keypoints.metric == "oks":
        return keypoint_metrics.oks_ap(coords, scores, gt.joints, gt.annotated, gt.area,
                                       gt.image_id, gt.annotation_id, keypoints.oks_sigmas,
                                       crowd=gt.crowd)
    raise EvalFileError("%s: the %s set is scored by %s, which needs MPII's 16 joints"
                        % (gt.source or "ground truth", keypoints.name, keypoints.metric))


def _num(value):
    return "%.2f" % value if math.isfinite(value) else "n/a"


def format_keypoint_score(result, keypoints, label="", markdown=True):
    """The table of one score: per joint and Mean / Total (PCK), or COCOeval's ten
    figures (OKS)."""
    if result.metric == "pck_torso":
        rows = [(name, result.per_joint[j]) for j, name in enumerate(keypoints.joint_names)]
        finite = [v for v in result.per_joint if math.isfinite(v)]
        rows.append(("Mean", float(np.mean(finite)) if finite else float("nan")))
        rows.append(("Total", result.total))
        header = ("joint", "PCK@%g" % result.details["threshold"])
    else:
        rows = [(name, result.details[name]) for name in keypoint_metrics.COCO_STATS]
        header = ("OKS", "%s" % (label or "value"))
    width = max(len(header[0]), max(len(r[0]) for r in rows))
    if markdown:
        lines = ["| %s | %s |" % header, "| --- | ---: |"]
        lines += ["| %s | %s |" % (name, _num(v)) for name, v in rows]
    else:
        lines = ["%-*s  %s" % (width, header[0], header[1])]
        lines += ["%-*s  %8s" % (width, name, _num(v)) for name, v in rows]
    return "\n".join(lines)


def report_keypoints(result, gt, label="", json_path=None, markdown=True, echo=print):
    """Print a keypoint set's score (and save it as JSON); returns ``[result]``."""
    keypoints = gt.keypoints
    echo("ground truth: %s (%d persons, %s set: %d joints)" % (
        gt.source or "in memory", gt.num_persons, keypoints.name, keypoints.num_joints))
    echo("metric: %s" % METRIC_NAMES[result.metric])
    if result.metric == "pck_torso" and result.details.get("no_torso"):
        count = result.details["no_torso"]
        echo("note: %d person%s no torso (an end unannotated, or both at one point): "
             "%s joints count as misses, as in eval_pck.m"
             % (count, " has" if count == 1 else "s have", "its" if count == 1 else "their"))
    echo("")
    echo(format_keypoint_score(result, keypoints, label, markdown))
    echo("")
    if json_path:
        atomic.write_json(json_path, sort_keys=False, payload={
            "predictions": label, "ground_truth": gt.source,
            "keypoints": keypoints.name, "joint_names": list(keypoints.joint_names),
            "num_persons": gt.num_persons, "results": [result.to_dict()]})
        echo("wrote %s" % json_path)
    return [result]


def evaluate_keypoints(checkpoint, data_dir, keypoints, config_path=None, flip=False,
                       batch_size=None, out_path=None, gt_path=None, echo=print,
                       json_path=None, plot_path=None, markdown=True):
    """:func:`evaluate_checkpoint` for shards of a keypoint set other than MPII."""
    from hgpipe.eval.checkpoint import load_checkpoint_config, load_model, resolve_checkpoint
    from hgpipe.eval.predict import predict_shards

    if gt_path:
        check_gt_for_set(gt_path, keypoints)
    if plot_path:
        raise EvalFileError("%s: --plot draws PCKh curves; the %s set is scored by %s"
                            % (plot_path, keypoints.name, keypoints.metric))
    gt = read_keypoint_ground_truth(gt_path or data_dir)   # before the model is built
    prefix = resolve_checkpoint(checkpoint)
    cfg = load_checkpoint_config(prefix, config_path)
    batch_size = batch_size or cfg["Train"]["batch_size"]
    out_path = out_path or os.path.join(os.path.dirname(prefix) or ".",
                                        DEFAULT_PREDICTIONS_NAME)
    with load_model(prefix, cfg, batch_size) as model:
        check_same_set(prefix, model.keypoints, data_dir, keypoints)
        echo("model: %s (%d px input, batch %d, flip test %s, %s set)" % (
            prefix, model.input_size, batch_size, "on" if flip else "off", keypoints.name))
        coords, scores = predict_shards(model, data_dir, flip)
    if len(coords) != gt.num_persons:
        raise EvalFileError("%s: %d predictions but %s has %d persons"
                            % (data_dir, len(coords), gt.source, gt.num_persons))
    write_predictions(out_path, coords, gt.annolist_index, gt.person_index,
                      attrs={"checkpoint": prefix, "shards": data_dir, "flip_test": flip},
                      keypoints=keypoints, scores=scores)
    echo("predictions: %s (%d persons)" % (out_path, len(coords)))
    result = score_predictions(coords, scores, gt)
    return report_keypoints(result, gt, short_name(prefix), json_path, markdown, echo)


def report_keypoint_file(path, gt, json_path=None, plot_path=None, markdown=True,
                         echo=print):
    """``pck --predictions FILE --gt SHARDS`` for shards of a set other than MPII."""
    keypoints = gt.keypoints
    if plot_path:
        raise EvalFileError("%s: --plot draws PCKh curves; the %s set is scored by %s"
                            % (plot_path, keypoints.name, keypoints.metric))
    coords, scores = load_keypoint_predictions(path, keypoints)
    if len(coords) != gt.num_persons:
        raise EvalFileError("%s: %d predictions but %s has %d persons"
                            % (path, len(coords), gt.source, gt.num_persons))
    if scores is None:
        if keypoints.metric == "oks":
            raise EvalFileError("%s: no 'scores' (N, %d): OKS AP ranks persons by them"
                                % (path, keypoints.num_joints))
    result = score_predictions(coords, scores, gt)
    return report_keypoints(result, gt, short_name(path), json_path, markdown, echo)
