"""``hgpipe pck``: PCKh on the MPII validation persons, of a predictions file or a model.

Two modes share one report:

* ``--predictions FILE --gt GT`` scores a predictions file;
* ``--checkpoint CKPT --data SHARDS`` first runs the checkpoint's network over the val
  shards (the stored crops, optionally with the flip test), maps the heatmap peaks to
  original image pixels with each crop's stored ``crop_to_image``, writes the
  predictions file (default: beside the checkpoint) and then scores it against the
  shards' ground truth (or ``--gt``).

The scoring and printing live in :func:`report_pckh`, which takes predictions already in
memory and a :class:`~hgpipe.eval.pred_files.GroundTruth`.
"""
import os

import click
import numpy as np

from hgpipe import atomic
from hgpipe.cli.options import user_errors
from hgpipe.eval import pckh
from hgpipe.eval.pred_files import (
    EvalFileError, Predictions, check_compatible, load_predictions, read_ground_truth,
    write_predictions)

CONVENTION_CHOICES = tuple(pckh.CONVENTIONS) + ("both",)
DEFAULT_PREDICTIONS_NAME = "predictions-val.h5"  # written beside the checkpoint


def conventions_for(choice):
    """'tompson' | 'mpii' | 'both' -> tuple of convention names, in table order."""
    return tuple(pckh.CONVENTIONS) if choice == "both" else (choice,)


def report_pckh(preds, gt, conventions=("tompson",), threshold=0.5, json_path=None,
                plot_path=None, label="", markdown=True, echo=click.echo):
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


@click.command("pck")
@click.option("--predictions", "predictions_path", type=click.Path(),
              help="Predictions file: .mat/.h5 with 'preds' (N,16,2), MATLAB/Octave HDF5, "
                   "or hgpipe's own predictions .h5.")
@click.option("--gt", "gt_path", type=click.Path(),
              help="Ground truth: detections_our_format.mat, Newell's valid.h5, or an "
                   "hgpipe shards directory (its val-*.h5) [--checkpoint: --data].")
@click.option("--checkpoint", type=click.Path(),
              help="Run this checkpoint (LOGDIR/model.ckpt-STEP, or a logdir: its latest) "
                   "over the val shards of --data, instead of reading --predictions.")
@click.option("--data", "data_dir", type=click.Path(file_okay=False),
              help="--checkpoint: shards directory (from `hgpipe prepare`) whose val crops "
                   "are predicted.")
@click.option("--config", "config_path", type=click.Path(dir_okay=False),
              help="--checkpoint: config it was trained with [default: config.ini beside "
                   "it].")
@click.option("--flip/--no-flip", default=False, show_default=True,
              help="--checkpoint: flip test (average with the mirrored crop's heatmaps).")
@click.option("--batch-size", type=click.IntRange(1), default=None,
              help="--checkpoint: crops per run [default: the config's Train batch_size].")
@click.option("--out", "out_path", type=click.Path(dir_okay=False),
              help="--checkpoint: predictions file to write [default: %s beside the "
                   "checkpoint]." % DEFAULT_PREDICTIONS_NAME)
@click.option("--convention", type=click.Choice(CONVENTION_CHOICES), default="both",
              show_default=True,
              help="tompson: published hourglass tables (<, Head = head-top, Mean); "
                   "mpii: official toolkit (<=, Head = neck+top, UBody, pooled Total).")
@click.option("--threshold", type=float, default=0.5, show_default=True,
              help="PCKh threshold as a fraction of head size (PCKh@0.1 is always shown).")
@click.option("--json", "json_path", type=click.Path(dir_okay=False),
              help="Also write every number (columns, joints, curves, AUC) as JSON here.")
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False),
              help="Also draw the PCKh curves (first convention) to this PNG.")
@click.option("--markdown/--plain", default=True, show_default=True,
              help="Table as Markdown or as aligned plain text.")
def pck_command(predictions_path, gt_path, checkpoint, data_dir, config_path, flip,
                batch_size, out_path, convention, threshold, json_path, plot_path, markdown):
    """Score predictions, or a checkpoint, on the MPII validation persons with PCKh.

    \b
    hgpipe pck --predictions FILE --gt GT
    hgpipe pck --checkpoint CKPT --data SHARDS [--flip] [--out PREDICTIONS.h5]
    """
    if predictions_path and checkpoint:
        raise click.UsageError("give either --predictions or --checkpoint, not both")
    if not predictions_path and not checkpoint:
        raise click.UsageError("give --predictions FILE --gt FILE, or --checkpoint CKPT "
                               "--data SHARDS_DIR")
    if checkpoint and not data_dir:
        raise click.UsageError("--checkpoint needs --data SHARDS_DIR (the val shards to "
                               "predict)")
    if predictions_path and not gt_path:
        raise click.UsageError("--predictions needs --gt FILE (detections_our_format.mat, "
                               "valid.h5 or a shards directory)")
    if predictions_path:
        unused = [name for name, value in (("--data", data_dir), ("--config", config_path),
                                           ("--out", out_path), ("--batch-size", batch_size))
                  if value is not None]
        if unused or flip:
            raise click.UsageError("%s only apply with --checkpoint"
                                   % ", ".join(unused + (["--flip"] if flip else [])))
    if not 0 < threshold:
        raise click.BadParameter("must be positive, got %g" % threshold,
                                 param_hint="--threshold")
    try:
        if checkpoint:
            shards_gt = read_ground_truth(data_dir)  # fails early, before the model is built
            with user_errors():
                preds, label = _predict_checkpoint(checkpoint, data_dir, shards_gt,
                                                   config_path, flip, batch_size, out_path)
            gt = read_ground_truth(gt_path) if gt_path else shards_gt
        else:
            preds = load_predictions(predictions_path)
            gt = read_ground_truth(gt_path)
            click.echo("predictions: %s" % predictions_path)
            label = _short_name(predictions_path)
        report_pckh(preds, gt, conventions_for(convention), threshold, json_path,
                    plot_path, label=label, markdown=markdown)
    except EvalFileError as error:
        raise click.ClickException(str(error))


def _predict_checkpoint(checkpoint, data_dir, shards_gt, config_path, flip, batch_size,
                        out_path):
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
        click.echo("model: %s (%d px input, batch %d, flip test %s)" % (
            prefix, model.input_size, batch_size, "on" if flip else "off"))
        coords, _ = predict_shards(model, data_dir, flip)
    write_predictions(out_path, coords, shards_gt.annolist_index, shards_gt.person_index,
                      attrs={"checkpoint": prefix, "shards": data_dir, "flip_test": flip})
    click.echo("predictions: %s (%d persons)" % (out_path, len(coords)))
    return (Predictions(coords, out_path, shards_gt.annolist_index, shards_gt.person_index),
            _short_name(prefix))


def _short_name(path):
    return os.path.basename(path.rstrip("/\\")) or path
