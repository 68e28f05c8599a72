"""``hgpipe import-weights``: PyTorch Stacked Hourglass weights as an hgpipe logdir."""
import click

from hgpipe.cli.options import config_options, user_errors


@click.command("import-weights", short_help="Convert bearpaw or PSH PyTorch weights into a logdir.")
@click.argument("checkpoint", type=click.Path(dir_okay=False))
@click.option("--from", "family", required=True, type=click.Choice(["bearpaw", "psh"]),
              help="bearpaw: bearpaw/pytorch-pose HourglassNet (hg_s2_b1, hg_s8_b1...); "
                   "psh: princeton-vl/pytorch_stacked_hourglass PoseNet.")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False),
              help="Logdir to write (model.ckpt-0 + config.ini); must be new or empty.")
@click.option("--mean", nargs=3, type=float, default=None, metavar="R G B",
              help="Input mean subtracted from the [0,1] image. Default: bearpaw "
                   "0.4404 0.4440 0.4327 (its MPII mean.pth.tar, as published with "
                   "anibali/pytorch-stacked-hourglass's port of bearpaw's code); psh none.")
@click.option("--no-mean", is_flag=True, help="Record no input mean (plain [0,1] input).")
@click.option("--keypoints", "keypoints_name", default="mpii", show_default=True,
              metavar="mpii|lsp|coco|FILE.json",
              help="The keypoint set the checkpoint predicts (its joints in that order): a "
                   "built-in set, or a set's JSON as a logdir's keypoints.json or an "
                   "export's NAME.keypoints.json holds it.")
@config_options
def import_weights_command(cfg, checkpoint, family, out_dir, mean, no_mean, keypoints_name):
    """Convert a PyTorch checkpoint (.pth / .pth.tar; zip or legacy format, read without
    torch) into a logdir that pck --checkpoint, predict, export and train accept.

    The number of stacks, features, modules and hourglass levels is read off the
    tensors; a checkpoint of another architecture is refused, naming the missing,
    unexpected or differently shaped tensors. --config/--set give the rest of the
    config.ini written (e.g. DataSetHG.img_size, [Train] for fine-tuning); its
    [Network] section is the imported network's. Train from it with
    `hgpipe train --config LOGDIR/config.ini --logdir LOGDIR ...` (starts at step 0).

    \b
    Examples:
      hgpipe import-weights hg_s2_b1/model_best.pth.tar --from bearpaw --out runs/bp_s2
      hgpipe import-weights checkpoint.pt --from psh --out runs/psh_s8
      hgpipe import-weights lsp/model_best.pth.tar --from bearpaw --keypoints lsp --out runs/bp_lsp
    """
    from hgpipe.interop.import_weights import import_weights
    with user_errors():
        if mean and no_mean:
            raise click.UsageError("--mean and --no-mean exclude each other")
        chosen = None if no_mean else (tuple(mean) if mean else "default")
        summary = import_weights(checkpoint, family, out_dir, mean=chosen, cfg=cfg,
                                 keypoints=_keypoints(keypoints_name))
    click.echo("imported %s: %s" % (checkpoint, summary["network"]))
    click.echo("  %d tensors -> %d variables (%d numbers); %d unused tensors skipped" % (
        summary["tensors"] + summary["ignored"], summary["tensors"], summary["numbers"],
        summary["ignored"]))
    mean = summary["input_mean"]
    click.echo("  input mean: %s" % ("none ([0,1] input)" if mean is None else
                                     " ".join("%.4f" % v for v in mean)))
    if summary["keypoints"].name != "mpii":
        click.echo("  keypoints: %s (%d joints)" % (summary["keypoints"].name,
                                                   summary["keypoints"].num_joints))
    click.echo("wrote %s and %s" % (summary["checkpoint"], summary["config"]))


def _keypoints(text):
    """--keypoints: a built-in set's name, else a JSON file holding a set."""
    import os
    from hgpipe.joints import KeypointSet, keypoint_set
    if not os.path.isfile(text):
        return keypoint_set(text)   # ValueError naming the choices: one line
    try:
        with open(text, "rb") as handle:
            return KeypointSet.from_json(handle.read(1 << 20).decode("utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise click.ClickException("%s: %s" % (text, str(exc).splitlines()[0]))
