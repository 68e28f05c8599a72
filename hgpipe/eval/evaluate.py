"""PCKh of a checkpoint on the val shards, and the PCKh report both ways of ``pck`` print.

``hgpipe pck --checkpoint``, :func:`hgpipe.evaluate` and the README's tables all come
from :func:`evaluate_checkpoint`: run the checkpoint's network over the val shards (the
stored crops, optionally with the flip test), map the heatmap peaks to original image
pixels with each crop's stored ``crop_to_image``, write the predictions file (default:
beside the checkpoint), then score it (:func:`report_pckh`) against the shards' ground
truth or another ground-truth file.
"""
import os

import numpy as np

from hgpipe import atomic
from hgpipe.eval import pckh
from hgpipe.eval.pred_files import (
    Predictions, check_compatible, read_ground_truth, write_predictions)

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
    return the PCKh results (see module)."""
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
