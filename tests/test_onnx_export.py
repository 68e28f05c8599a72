"""``hgpipe export --onnx``: the frozen inference graph through tf2onnx, run by
onnxruntime, against TensorFlow's output. Skipped where tf2onnx or onnxruntime is not
installed (they are optional: only ``--onnx`` needs them)."""
import os
import sys

import numpy as np
import pytest

from conftest import cli_runner
from cross_runtime import randomized_initial_values
from hgpipe.cli import main
from hgpipe.config import load_config
from hgpipe.tf_compat import import_tf

tf = import_tf()

# tiny, but with every op kind of the real network: the bearpaw stem, an input mean, two
# stacks (remaps), one hourglass level (pool + nearest upsample)
TINY = ["DataSetHG.img_size=32", "DataSetHG.hm_size=8", "Network.nStacks=2",
        "Network.nFeats=16", "Network.nLow=1", "Network.dropout_rate=0.0",
        "Network.stem=bearpaw", "Network.input_mean=0.45 0.44 0.43"]


@pytest.fixture(scope="module")
def logdir(tmp_path_factory):
    """An inference-network checkpoint with random weights and BN statistics."""
    from hgpipe.model.inference import build_inference_graph, model_kwargs
    cfg = load_config(None, TINY)
    out = str(tmp_path_factory.mktemp("onnx_logdir"))
    graph = tf.Graph()
    with graph.as_default():
        build_inference_graph(model_kwargs(cfg), 32)
        values = randomized_initial_values(tf, np.random.RandomState(0))
        with tf.Session(graph=graph) as sess:
            sess.run(tf.global_variables_initializer(), values)
            tf.train.Saver().save(sess, os.path.join(out, "model.ckpt"), global_step=3,
                                  write_meta_graph=False)
    with open(os.path.join(out, "config.ini"), "w") as handle:
        handle.write(cfg.to_ini())
    return out


def _export(logdir, tmp_path, input_dtype):
    frozen, onnx_path = str(tmp_path / "model.pb"), str(tmp_path / "model.onnx")
    result = cli_runner().invoke(main, [
        "export", "--checkpoint", logdir, "--out", frozen, "--onnx", onnx_path,
        "--input-dtype", input_dtype, "--batch-size", "0"])
    return result, frozen, onnx_path


@pytest.mark.parametrize("input_dtype", ["uint8", "float32"])
def test_onnx_model_computes_what_the_frozen_graph_computes(logdir, tmp_path, input_dtype):
    pytest.importorskip("tf2onnx")
    ort = pytest.importorskip("onnxruntime")
    from hgpipe.eval.export import load_frozen_graph
    result, frozen, onnx_path = _export(logdir, tmp_path, input_dtype)
    assert result.exit_code == 0, result.output + result.stderr
    assert "wrote ONNX %s (opset 13" % onnx_path in result.output

    images = np.random.RandomState(1).randint(0, 256, (3, 32, 32, 3)).astype(np.uint8)
    if input_dtype == "float32":
        images = images.astype(np.float32) / 255.0
    with load_frozen_graph(frozen) as model:
        expected = model.run(images)
    session = ort.InferenceSession(onnx_path, providers=["CPUExecutionProvider"])
    inputs, outputs = session.get_inputs(), session.get_outputs()
    assert [i.name for i in inputs] == ["input"] and [o.name for o in outputs] == ["heatmaps"]
    assert inputs[0].type == "tensor(%s)" % ("uint8" if input_dtype == "uint8" else "float")
    got = session.run(["heatmaps"], {"input": images})[0]
    assert got.shape == expected.shape == (3, 8, 8, 16)
    scale = np.abs(expected).max()
    assert scale > 0.1 and np.abs(got - expected).max() <= 1e-4 * scale


def test_onnx_without_tf2onnx_is_one_line_and_writes_nothing(logdir, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "tf2onnx", None)  # makes `import tf2onnx` fail
    monkeypatch.setitem(sys.modules, "tf2onnx.convert", None)
    result, frozen, onnx_path = _export(logdir, tmp_path, "uint8")
    assert result.exit_code == 1 and "Traceback" not in result.output + result.stderr
    assert result.stderr.strip().splitlines() == [
        result.stderr.strip().splitlines()[0]]
    assert "--onnx needs tf2onnx" in result.stderr and "pip install tf2onnx" in result.stderr
    assert not os.path.exists(frozen) and not os.path.exists(onnx_path)


def test_onnx_export_prints_no_tensorflow_start_up_lines(logdir, tmp_path):
    """docs/bad-input.md: TensorFlow's start-up lines are held back. tf2onnx imports more of
    TensorFlow (and its own logging) when --onnx loads it; checked from a user's shell."""
    import subprocess
    pytest.importorskip("tf2onnx")
    pytest.importorskip("onnxruntime")
    from cross_runtime import worker_env
    from test_first_run import NOT_IN_A_USERS_SHELL, TF_CHATTER
    env = {k: v for k, v in worker_env().items() if k not in NOT_IN_A_USERS_SHELL}
    proc = subprocess.run(
        [sys.executable, "-m", "hgpipe", "export", "--checkpoint", logdir,
         "--out", str(tmp_path / "m.pb"), "--onnx", str(tmp_path / "m.onnx")],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True,
        timeout=300)
    assert proc.returncode == 0, proc.stdout
    assert os.path.getsize(str(tmp_path / "m.onnx")) > 1000
    chatter = [line for line in proc.stdout.splitlines()
               if any(marker in line for marker in TF_CHATTER) or line.startswith("W0")
               or "tf2onnx" in line and ("INFO" in line or "WARNING" in line)]
    assert not chatter, proc.stdout
