"""Model FLOPs counted from the graph itself: every convolution, forward and backward.

Why count by hand rather than ``tf.profiler``: the profiler's per-op FLOP statistics
exist for ``Conv2D`` but not for its gradient ops, so it cannot say what a training step
costs. Here each ``Conv2D`` (forward), ``Conv2DBackpropInput`` (gradient w.r.t. the
input) and ``Conv2DBackpropFilter`` (w.r.t. the weights) costs 2 FLOPs per
multiply-accumulate, MACs = (forward output elements) x kh x kw x C_in - the same
convention as the profiler's Conv2D statistic. Convolutions are nearly all of an
hourglass's arithmetic; batch norm, ReLU, additions and upsampling are not counted.
"""
from typing import NamedTuple

import numpy as np

FORWARD_OPS = ("Conv2D",)
BACKWARD_OPS = ("Conv2DBackpropInput", "Conv2DBackpropFilter")


class ConvFlops(NamedTuple):
    forward: float      # FLOPs of the forward convolutions, whole batch
    backward: float     # FLOPs of the gradient convolutions, whole batch
    convolutions: int   # forward Conv2D ops counted

    @property
    def training(self):
        return self.forward + self.backward


def _shape(tensor, what):
    dims = tensor.shape.as_list() if tensor.shape.dims is not None else None
    if dims is None or any(d is None for d in dims):
        raise ValueError("flops: %s of %s has no static shape (%s)" % (
            what, tensor.op.name, tensor.shape))
    return dims


def conv_op_flops(op):
    """FLOPs of one convolution op (forward or gradient), 0 for any other op."""
    if op.type == "Conv2D":
        output, kernel = _shape(op.outputs[0], "output"), _shape(op.inputs[1], "filter")
    elif op.type == "Conv2DBackpropInput":
        output, kernel = _shape(op.inputs[2], "out_backprop"), _shape(op.inputs[1], "filter")
    elif op.type == "Conv2DBackpropFilter":
        output, kernel = _shape(op.inputs[2], "out_backprop"), _shape(op.outputs[0], "filter")
    else:
        return 0.0
    kh, kw, c_in, _c_out = kernel
    return 2.0 * float(np.prod(output)) * kh * kw * c_in


def ancestors(fetches):
    """Every op that running ``fetches`` (ops or tensors) may execute."""
    stack = [getattr(f, "op", f) for f in fetches]
    seen = set()
    while stack:
        op = stack.pop()
        if op in seen:
            continue
        seen.add(op)
        stack.extend(t.op for t in op.inputs)
        stack.extend(op.control_inputs)
    return seen


def count_conv_flops(graph, fetches=None):
    """Forward and backward convolution FLOPs of ``graph`` (of what ``fetches`` runs).

    Pass the train op as ``fetches``: TensorFlow's Conv2D gradient always builds the
    gradient w.r.t. the input too, also for the first convolution whose input is the
    data, but a training step never runs it; only the fetches' ancestors are counted.
    """
    ops = graph.get_operations()
    if fetches is not None:
        needed = ancestors(fetches)
        ops = [op for op in ops if op in needed]
    forward = backward = 0.0
    count = 0
    for op in ops:
        if op.type in FORWARD_OPS:
            forward += conv_op_flops(op)
            count += 1
        elif op.type in BACKWARD_OPS:
            backward += conv_op_flops(op)
    return ConvFlops(forward, backward, count)
