"""The frozen inference graph as an ONNX model, through tf2onnx (optional dependency).

Same contract as the frozen graph (:mod:`hgpipe.eval.export`): ONNX input ``input``
(N, S, S, 3) uint8 0-255 or float32 0-1, NHWC RGB; output ``heatmaps`` (N, S/4, S/4, K)
float32, the last stack's heatmaps in the run's keypoint set's joint order (MPII: 16). The converter runs on the
frozen GraphDef (``tf2onnx.convert.from_graph_def``), so what ONNX computes is what
``export`` writes, input mean and all. tf2onnx and onnx are imported only here, only
when ``--onnx`` is asked for.
"""
from hgpipe import atomic
from hgpipe.eval.export import ExportError, freeze
from hgpipe.model.inference import INPUT_NODE, OUTPUT_NODE
from hgpipe.native_stderr import quiet_native_stderr

# ONNX opset 13: supported by every onnxruntime from 1.6 (the Python 3.7 lane's
# onnxruntime 1.10 included) and by tf2onnx for all ops of the network.
OPSET = 13
INSTALL_HINT = "pip install tf2onnx onnxruntime"


def require_tf2onnx():
    """The tf2onnx module, or an ExportError saying how to install it."""
    try:
        # tf2onnx imports TensorFlow (and more of it than hgpipe does), whose C++
        # start-up lines would otherwise reach the terminal: held back as import_tf's
        with quiet_native_stderr():
            import tf2onnx.convert
    except ImportError as exc:
        raise ExportError("--onnx needs tf2onnx (%s): %s" % (exc, INSTALL_HINT))
    return tf2onnx


def to_onnx(graph_def, opset=OPSET):
    """A frozen hgpipe GraphDef as an ONNX ModelProto with hgpipe's tensor names."""
    tf2onnx = require_tf2onnx()
    try:
        model, _ = tf2onnx.convert.from_graph_def(
            graph_def, input_names=[INPUT_NODE + ":0"], output_names=[OUTPUT_NODE + ":0"],
            opset=opset, tensors_to_rename={INPUT_NODE + ":0": INPUT_NODE,
                                            OUTPUT_NODE + ":0": OUTPUT_NODE})
    except Exception as exc:  # tf2onnx raises bare Exceptions and ValueErrors
        text = str(exc).strip().splitlines()
        raise ExportError("tf2onnx %s cannot convert this graph: %s" % (
            getattr(tf2onnx, "__version__", "?"), text[0] if text else type(exc).__name__))
    return model


def write_onnx(model, path, opset=OPSET):
    """Convert the restored ``model``'s inference network and write it atomically."""
    proto = to_onnx(freeze(model), opset)
    atomic.write_bytes(path, proto.SerializeToString())
    return proto
