"""``hgpipe pck``: PCKh of a predictions file against MPII validation ground truth.

The scoring and printing live in :func:`report_pckh`, which takes predictions already in
memory and a :class:`~hgpipe.eval.pred_files.GroundTruth`, so that a mode which runs a
model first (``--checkpoint``) can hand its predictions to the same code.
"""
import os

import click

from hgpipe.eval import pckh
from hgpipe.eval.pred_files import (
    EvalFileError, Predictions, check_compatible, load_predictions, read_ground_truth,
    write_json_atomic)

CONVENTION_CHOICES = tuple(pckh.CONVENTIONS) + ("both",)


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
    for note in gt.notes:
        echo("note: " + note)
    for result in results:
        echo("convention %s: %s" % (result.convention.name, result.convention.description))
    echo("")
    echo(pckh.format_table(results, markdown=markdown, label=label))
    echo("")
    for result in results:
        echo(pckh.format_joint_counts(result))
    if json_path:
        write_json_atomic(json_path, {
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
                   "hgpipe shards directory (its val-*.h5).")
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
def pck_command(predictions_path, gt_path, convention, threshold, json_path, plot_path,
                markdown):
    """Score predictions on the MPII validation persons with PCKh."""
    if not predictions_path:
        raise click.UsageError("give --predictions FILE --gt FILE (the --checkpoint mode "
                               "is not available yet)")
    if not gt_path:
        raise click.UsageError("--predictions needs --gt FILE (detections_our_format.mat, "
                               "valid.h5 or a shards directory)")
    if not 0 < threshold:
        raise click.BadParameter("must be positive, got %g" % threshold,
                                 param_hint="--threshold")
    try:
        preds = load_predictions(predictions_path)
        gt = read_ground_truth(gt_path)
        click.echo("predictions: %s" % predictions_path)
        report_pckh(preds, gt, conventions_for(convention), threshold, json_path,
                    plot_path, label=_short_name(predictions_path), markdown=markdown)
    except EvalFileError as error:
        raise click.ClickException(str(error))


def _short_name(path):
    return os.path.basename(path.rstrip("/\\")) or path
