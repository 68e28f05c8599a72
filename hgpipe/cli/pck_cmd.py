"""``hgpipe pck``: PCKh on the MPII validation persons, of predictions files or a model.

Two modes share one report (:mod:`hgpipe.eval.evaluate`):

* ``--predictions FILE [--predictions FILE2 ...] --gt GT`` scores each file, each in
  its own report;
* ``--checkpoint CKPT --data SHARDS`` is :func:`hgpipe.evaluate`: runs the checkpoint
  over the val shards, writes the predictions file and scores it.

Shards of a keypoint set other than MPII are scored by the set's metric (PCK@0.2 of the
torso, OKS AP; :mod:`hgpipe.eval.evaluate`), in both modes.
"""
import os

import click

from hgpipe.cli.options import user_errors
from hgpipe.eval.evaluate import (CONVENTION_CHOICES, DEFAULT_PREDICTIONS_NAME,
                                  conventions_for, report_keypoint_file, report_pckh,
                                  shards_keypoints, short_name)
from hgpipe.eval.pred_files import (EvalFileError, load_predictions, read_ground_truth,
                                    read_keypoint_ground_truth)
from hgpipe.joints import MPII


@click.command("pck", short_help="Score predictions files, or a checkpoint, with PCKh.")
@click.option("--predictions", "predictions_paths", type=click.Path(), multiple=True,
              help="Predictions file: .mat/.h5 with 'preds' (N,16,2), MATLAB/Octave HDF5, "
                   "or hgpipe's own predictions .h5. Repeat it to score several files "
                   "against one --gt, each in its own table.")
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
def pck_command(predictions_paths, gt_path, checkpoint, data_dir, config_path, flip,
                batch_size, out_path, convention, threshold, json_path, plot_path, markdown):
    """Score predictions files, or a checkpoint, with PCKh on MPII val.

    \b
    hgpipe pck --predictions FILE [--predictions FILE2 ...] --gt GT
    hgpipe pck --checkpoint CKPT --data SHARDS [--flip] [--out PREDICTIONS.h5]

    \b
    Examples:
      hgpipe pck --checkpoint runs/demo/train --data runs/demo/shards --plot pckh.png
      hgpipe pck --predictions pred_a.mat --predictions pred_b.mat \\
          --gt detections_our_format.mat
    """
    if predictions_paths and checkpoint:
        raise click.UsageError("give either --predictions or --checkpoint, not both")
    if not predictions_paths and not checkpoint:
        raise click.UsageError("give --predictions FILE --gt FILE, or --checkpoint CKPT "
                               "--data SHARDS_DIR")
    if checkpoint and not data_dir:
        raise click.UsageError("--checkpoint needs --data SHARDS_DIR (the val shards to "
                               "predict)")
    if predictions_paths and not gt_path:
        raise click.UsageError("--predictions needs --gt FILE (detections_our_format.mat, "
                               "valid.h5 or a shards directory)")
    if predictions_paths:
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
            from hgpipe import api
            with user_errors():
                api.evaluate(checkpoint, data_dir, config_path, flip, batch_size, out_path,
                             conventions_for(convention), threshold, gt_path,
                             echo=click.echo, json_path=json_path, plot_path=plot_path,
                             markdown=markdown)
            return
        keypoints = shards_keypoints(gt_path) if os.path.isdir(gt_path) else MPII
        if keypoints != MPII:   # val shards of another keypoint set: its own metric
            gt = read_keypoint_ground_truth(gt_path)
        else:
            gt = read_ground_truth(gt_path)
        if len(set(predictions_paths)) != len(predictions_paths):
            raise click.UsageError("the same --predictions file is given twice")
        if len(predictions_paths) > 1 and (json_path or plot_path):
            raise click.UsageError("--json and --plot take one --predictions file; "
                                   "score the files one at a time for those")
        for k, path in enumerate(predictions_paths):
            if keypoints != MPII:
                click.echo("%spredictions: %s" % ("\n" if k else "", path))
                report_keypoint_file(path, gt, json_path, plot_path, markdown, click.echo)
                continue
            preds = load_predictions(path)
            click.echo("%spredictions: %s" % ("\n" if k else "", path))
            report_pckh(preds, gt, conventions_for(convention), threshold, json_path,
                        plot_path, label=short_name(path), markdown=markdown,
                        echo=click.echo)
    except EvalFileError as error:
        raise click.ClickException(str(error))
