"""``hgpipe predict``: the 16 joints of one person per image, as JSON and a drawn PNG."""
import os

import click

from hgpipe.atomic import ensure_dir
from hgpipe.cli.options import user_errors


@click.command("predict")
@click.argument("images", nargs=-1, required=True, type=click.Path(dir_okay=False))
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
@click.option("--flip/--no-flip", default=False, show_default=True,
              help="Flip test: average with the mirrored crop's heatmaps (2x the time).")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False),
              help="Folder for NAME.pose.json and NAME.pose.png (created).")
def predict_command(images, checkpoint, config_path, center, scale, bbox, flip, out_dir):
    """Predict the joints of the person in each IMAGE.

    Without --center/--scale or --bbox the whole image is the person box (a square of
    its longer side, centred). The same box is used for every IMAGE. Writes, per image,
    NAME.pose.json (16 joints in MPII order: name, x, y in 1-based original-image pixels,
    confidence = heatmap peak) and NAME.pose.png (the skeleton on the original image).
    """
    from hgpipe.data.images import decode_image
    from hgpipe.eval import predict
    from hgpipe.eval.checkpoint import open_checkpoint

    with user_errors():
        box = _person_box(predict, center, scale, bbox)
        outputs = _check_inputs(predict, images, out_dir)
        with open_checkpoint(checkpoint, config_path) as model:
            click.echo("model: %s (%d px input)" % (model.checkpoint, model.input_size))
            ensure_dir(out_dir)
            for image_path, (json_path, png_path) in zip(images, outputs):
                image = decode_image(image_path)
                person = box or predict.box_from_image(image.shape[1], image.shape[0])
                predict.check_box(image_path, image.shape, person)
                coords, confidence = predict.predict_person(model, image, person, flip)
                predict.write_outputs(json_path, png_path, predict.pose_record(
                    image_path, image.shape, person, coords, confidence, flip,
                    model.checkpoint), predict.render_pose(image, coords))
                click.echo("%s: wrote %s and %s" % (image_path, json_path, png_path))


def _person_box(predict, center, scale, bbox):
    """The box given on the command line, or None for "the whole image"."""
    if bbox and (center or scale is not None):
        raise click.UsageError("give either --bbox or --center/--scale, not both")
    if bool(center) != (scale is not None):
        raise click.UsageError("--center and --scale go together (raw MPII objpos and scale)")
    if bbox:
        return predict.box_from_bbox(*bbox)
    if center:
        return predict.box_from_center_scale(center, scale)
    return None


def _check_inputs(predict, images, out_dir):
    """Fail before loading the model: every image must exist and names must not clash."""
    outputs, seen = [], {}
    for path in images:
        if not os.path.isfile(path):
            raise ValueError("%s: no such image file" % path)
        paths = predict.output_paths(out_dir, path)
        if paths[0] in seen:
            raise ValueError("%s and %s would both write %s; predict them into different "
                             "--out folders" % (seen[paths[0]], path, paths[0]))
        seen[paths[0]] = path
        outputs.append(paths)
    return outputs
