"""``hgpipe predict``: joints of the persons in images, folders and videos, as JSON Lines."""
import click
from tqdm import tqdm

from hgpipe.cli.options import echo_err, user_errors


@click.command("predict", short_help="Predict joints in images, folders or videos.")
@click.argument("inputs", nargs=-1, required=True, type=click.Path())
@click.option("--checkpoint", required=True, type=click.Path(),
              help="Checkpoint prefix (LOGDIR/model.ckpt-STEP) or a logdir (its latest).")
@click.option("--config", "config_path", type=click.Path(dir_okay=False),
              help="Config the checkpoint was trained with [default: config.ini beside it].")
@click.option("--center", nargs=2, type=float, default=None, metavar="X Y",
              help="Raw MPII objpos of the person (1-based pixels); needs --scale.")
@click.option("--scale", type=float, default=None,
              help="Raw MPII scale (person height / 200 px); the crop covers "
                   "1.25 x 200 x scale px around the centre moved down 15 x scale.")
@click.option("--bbox", nargs=4, type=float, default=None, metavar="X1 Y1 X2 Y2",
              help="Person box in 1-based pixels; the crop is 1.25 x its longer side.")
@click.option("--detections", type=click.Path(dir_okay=False),
              help="Person boxes from any detector, COCO results format (JSON list of "
                   "image_id, category_id, bbox [x, y, w, h], score); one prediction per "
                   "box. image_id: the file name, its stem or number; video frames "
                   "'NAME/FRAME' (or FRAME with one video).")
@click.option("--min-detection-score", type=float, default=0.0, show_default=True,
              help="--detections: drop boxes scored below this.")
@click.option("--flip/--no-flip", default=False, show_default=True,
              help="Flip test: average with the mirrored crop's heatmaps (2x the time).")
@click.option("--batch-size", type=click.IntRange(1), default=16, show_default=True,
              help="Person crops per model run.")
@click.option("--draw", is_flag=True,
              help="Also write each input annotated: NAME.pose.png for an image, "
                   "NAME.pose.mp4 (or .avi/.mov/.mkv as the input) for a video.")
@click.option("--min-score", type=float, default=0.3, show_default=True,
              help="--draw: joints whose heatmap peak is lower are not drawn.")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False),
              help="Folder for predictions.jsonl and the drawings (created).")
def predict_command(inputs, checkpoint, config_path, center, scale, bbox, detections,
                    min_detection_score, flip, batch_size, draw, min_score, out_dir):
    """Predict the joints of the person(s) in each INPUT: an image, a folder of images
    and videos, or a video (OpenCV reads it).

    The person box is the whole frame (a square of its longer side, centred) unless
    --center/--scale or --bbox gives one box for every frame, or --detections gives a
    detector's boxes per image or frame. The model sees one person per box: a box that
    holds other detected persons gets a note. Writes OUT/predictions.jsonl: one line per
    person (image or frame, box, the joints of the run's keypoint set, MPII's 16 unless
    it trained on another: name, x, y in 1-based original pixels, score = heatmap peak). An input that cannot be read, or a box that
    cannot be right, is skipped with its reason and the rest goes on; the exit status is
    then 1.

    \b
    Examples:
      hgpipe predict photo.jpg --checkpoint runs/demo/train --out pred --draw
      hgpipe predict photos/ clip.mp4 --checkpoint runs/demo/train --out pred
      hgpipe predict photos/ --detections dets.json --checkpoint LOGDIR --out pred
    """
    from hgpipe import api
    from hgpipe.eval import detections as dets, media
    from hgpipe.eval.predict_run import drawn_paths, predict_box_from_options

    given = [name for name, used in (("--bbox", bool(bbox)),
                                     ("--center/--scale", bool(center) or scale is not None),
                                     ("--detections", bool(detections))) if used]
    if len(given) > 1:
        raise click.UsageError("give either %s, not both" % " or ".join(given))
    if bool(center) != (scale is not None):
        raise click.UsageError("--center and --scale go together (raw MPII objpos and scale)")
    failed = []

    def on_skip(name, reason):
        failed.append(name)
        echo_err("skipped %s: %s" % (name, reason))

    with user_errors():
        box = predict_box_from_options(center, scale, bbox)
        # everything that can be checked is checked before the model loads
        sources = media.expand_inputs(inputs)
        if detections:
            dets.read_detections(detections, min_detection_score)
        if draw:
            drawn_paths(out_dir, sources)
        with api.load(checkpoint, config_path, batch_size) as model:
            click.echo("model: %s (%d px input, batch %d)" % (
                model.checkpoint, model.input_size, batch_size))
            summary = api.predict_files(
                model, inputs, out_dir, box, detections, min_detection_score, flip, draw,
                min_score, on_skip, progress=lambda total: tqdm(
                    total=total or None, unit="frame", desc="predict", dynamic_ncols=True,
                    disable=None))
    _report(summary)


def _count(n, one, many=None):
    """'1 box' / '3 boxes': the summary lines count in the singular for one."""
    return "%d %s" % (n, one if n == 1 else (many or one + "s"))


def _report(summary):
    if summary["jsonl"]:
        click.echo("wrote %s from %s to %s (%.1f frames/s)" % (
            _count(summary["persons"], "person"), _count(summary["frames"], "frame"),
            summary["jsonl"], summary["frames_per_sec"]))
    for path in summary["drawn"]:
        click.echo("wrote %s" % path)
    if summary["frames_without_person"]:
        click.echo("note: %s no detection (no line for them)"
                   % _count(summary["frames_without_person"], "frame had", "frames had"))
    if summary["crowded"]:
        click.echo("note: %s other detected persons (their lines carry a note): the "
                   "model sees one person per crop"
                   % _count(summary["crowded"], "box holds", "boxes hold"))
    if summary["too_small"]:
        from hgpipe.eval.batch_predict import SMALL_PERSON_FRACTION
        click.echo("note: in %s the joints span under %d%% of the box (their lines "
                   "carry a note): the box holds more than the model saw; give --bbox or "
                   "--detections" % (_count(summary["too_small"], "box", "boxes"),
                                     100 * SMALL_PERSON_FRACTION))
    if summary["failures"]:
        raise click.ClickException("%s skipped (listed above)%s" % (
            _count(len(summary["failures"]), "image or frame", "images or frames"),
            "" if summary["jsonl"] else "; nothing written"))

