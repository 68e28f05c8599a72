"""``hgpipe export``: a checkpoint as a frozen ``.pb`` (and optionally a SavedModel)."""
import os

import click

from hgpipe.cli.options import user_errors


@click.command("export", short_help="Freeze a checkpoint into a .pb (SavedModel, ONNX too).")
@click.option("--checkpoint", required=True, type=click.Path(),
              help="Checkpoint prefix (LOGDIR/model.ckpt-STEP) or a logdir (its latest).")
@click.option("--config", "config_path", type=click.Path(dir_okay=False),
              help="Config the checkpoint was trained with [default: config.ini beside it].")
@click.option("--out", "out_path", required=True, type=click.Path(dir_okay=False),
              help="Frozen GraphDef to write (e.g. model.pb); replaced atomically.")
@click.option("--input-dtype", type=click.Choice(["uint8", "float32"]), default="uint8",
              show_default=True,
              help="Input node type: uint8 RGB 0-255 (converted in the graph) or float32 0-1.")
@click.option("--batch-size", type=click.IntRange(0), default=1, show_default=True,
              help="Static batch size of the input node; 0 = dynamic (unknown) batch.")
@click.option("--saved-model", "saved_model_dir", type=click.Path(file_okay=False),
              help="Also write a SavedModel here (tag 'serve', signature "
                   "'serving_default': images -> heatmaps); must not exist yet.")
@click.option("--onnx", "onnx_path", type=click.Path(dir_okay=False),
              help="Also write an ONNX model (opset 13; inputs 'input', output "
                   "'heatmaps', as the .pb) via tf2onnx, which must be installed.")
def export_command(checkpoint, config_path, out_path, input_dtype, batch_size,
                   saved_model_dir, onnx_path):
    """Freeze the inference network of a checkpoint into one GraphDef file.

    Nodes: 'input' (N, S, S, 3) and 'heatmaps' (N, S/4, S/4, K) float32, the final
    stack's heatmaps in the joint order of the run's keypoint set (MPII: 16; another
    set's names go to NAME.keypoints.json beside OUT). Attributes holding default values are stripped,
    so a graph frozen with TensorFlow 2.x loads in TensorFlow 1.15 and vice versa.

    \b
    Examples:
      hgpipe export --checkpoint runs/demo/train --out model.pb
      hgpipe export --checkpoint runs/demo/train --out model.pb --onnx model.onnx
    """
    from hgpipe.eval import export
    from hgpipe.eval.checkpoint import open_checkpoint

    with user_errors():
        if saved_model_dir and os.path.exists(saved_model_dir):
            raise export.ExportError("%s: already exists; give a new SavedModel folder"
                                     % saved_model_dir)
        if onnx_path:  # before anything is written
            from hgpipe.eval.onnx_export import require_tf2onnx
            require_tf2onnx()
        with open_checkpoint(checkpoint, config_path, batch_size or None,
                             input_dtype) as model:
            frozen = export.write_frozen_graph(model, out_path)
            click.echo("wrote %s (%d nodes, %.1f MB) from %s" % (
                out_path, len(frozen.node), os.path.getsize(out_path) / 1e6,
                model.checkpoint))
            for line in export.describe_io(model):
                click.echo(line)
            beside = export.write_keypoints_beside(model, out_path)
            if beside:
                click.echo("wrote %s (the %s keypoint set: joint names, pairs, skeleton)"
                           % (beside, model.keypoints.name))
            if saved_model_dir:
                export.write_saved_model(
                    model, saved_model_dir, on_removed=lambda name: click.echo(
                        "removed %s (left by an interrupted export)" % name))
                click.echo("wrote SavedModel %s (tag serve, signature serving_default: "
                           "images -> heatmaps)" % saved_model_dir)
            if onnx_path:
                from hgpipe.eval.onnx_export import OPSET, write_onnx
                write_onnx(model, onnx_path)
                click.echo("wrote ONNX %s (opset %d, input 'input', output 'heatmaps')"
                           % (onnx_path, OPSET))
