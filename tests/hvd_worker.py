"""One rank of the 2-process Horovod tests (run by tests/test_distributed.py under
``horovodrun -np 2 -H localhost:2 --gloo``); writes what it saw to OUT/rank<r>.npz.

    python hvd_worker.py sync OUT STEPS      hgpipe's training graph (train-mode batch norm,
        RMSProp, the backend's gradient averaging) on data that differs per rank; saves
        every variable after every step
    python hvd_worker.py gradient OUT        a batch-norm-in-inference-mode hourglass, one
        SGD step (lr 1) through the averaged gradient; saves the weights before/after
    python hvd_worker.py partition OUT SHARDS   the reader hgpipe's Trainer builds on this
        rank; saves the sample indices of its batches in epochs 0 and 1

Each rank starts from a different random initialisation: the broadcast from rank 0 is
what makes them agree.
"""
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from hgpipe.config import load_config  # noqa: E402
from hgpipe.tf_compat import import_tf  # noqa: E402

INPUT, HEATMAP = 32, 8
NETWORK = ["Network.nStacks=2", "Network.nFeats=16", "Network.nLow=2",
           "Network.dropout_rate=0", "DataSetHG.img_size=%d" % INPUT,
           "DataSetHG.hm_size=%d" % HEATMAP, "Train.batch_size=3"]


def rank_batch(rank, step, batch_size=3):
    """The batch rank ``rank`` trains on at ``step`` (pure function, for the checker)."""
    rng = np.random.RandomState([rank, step])
    return {"images": rng.randint(0, 256, (batch_size, INPUT, INPUT, 3)).astype(np.uint8),
            "heatmaps": rng.randint(0, 256, (batch_size, HEATMAP, HEATMAP, 16)).astype(np.uint8),
            "weights": np.ones((batch_size, 16), np.float32)}


def inference_mode_model(tf):
    """Images/heatmaps placeholders of any batch -> plain MSE over an hourglass whose batch
    norm uses its moving statistics: the loss is a mean of per-sample terms, so the mean
    of two halves' gradients is exactly the gradient of their union."""
    from hgpipe.model.hourglass import build_hourglass, heatmaps_from_uint8, input_from_uint8
    from hgpipe.model.inference import model_kwargs
    from hgpipe.model.loss import heatmap_loss
    images = tf.placeholder(tf.uint8, (None, INPUT, INPUT, 3))
    heatmaps = tf.placeholder(tf.uint8, (None, HEATMAP, HEATMAP, 16))
    outputs = build_hourglass(input_from_uint8(images), is_training=False,
                              **model_kwargs(load_config(None, NETWORK)))
    loss, _ = heatmap_loss(outputs, heatmaps_from_uint8(heatmaps), None, weighted=False)
    return images, heatmaps, loss


def main(mode, out, steps=1):
    from hgpipe.train.distributed import backend
    tf = import_tf()
    dist = backend("horovod")
    if mode == "partition":
        from hgpipe.train.trainer import Trainer
        small = ["Train.batch_size=4", "Network.nStacks=1", "Network.nFeats=16",
                 "Network.nLow=2"]
        trainer = Trainer(load_config(None, small), steps,
                          os.path.join(out, "logdir"), distributed_backend="horovod")
        trainer.dist = dist
        with tf.Graph().as_default():
            trainer._build(tf)
        np.savez(os.path.join(out, "rank%d.npz" % dist.rank), size=dist.size,
                 total=trainer.reader.total, epoch0=trainer.reader.epoch_batches(0),
                 epoch1=trainer.reader.epoch_batches(1))
        trainer.reader.close()
        return
    tf.set_random_seed(1000 + dist.rank)  # different on each rank until the broadcast
    saved = {}
    if mode == "sync":
        from hgpipe.train.graph import FeedInput, build_train_graph
        cfg = load_config(None, NETWORK)
        inputs = FeedInput(3, INPUT, HEATMAP)
        graph = build_train_graph(cfg, inputs, "cpu", dist)
        broadcast = dist.broadcast_variables(tf)
        names = [v.name for v in tf.global_variables()]
        with tf.Session() as sess:
            sess.run(tf.global_variables_initializer())
            sess.run(broadcast)
            for step in range(int(steps) + 1):
                values = sess.run(tf.global_variables())
                for name, value in zip(names, values):
                    saved["%d/%s" % (step, name)] = value
                if step < int(steps):
                    sess.run(graph.train_op, inputs.feed(rank_batch(dist.rank, step)))
    elif mode == "gradient":
        images, heatmaps, loss = inference_mode_model(tf)
        optimizer = dist.distribute_optimizer(tf.train.GradientDescentOptimizer(1.0))
        train_op = optimizer.minimize(loss)
        broadcast = dist.broadcast_variables(tf)
        variables = tf.trainable_variables()
        with tf.Session() as sess:
            sess.run(tf.global_variables_initializer())
            sess.run(broadcast)
            before = sess.run(variables)
            batch = rank_batch(dist.rank, 0)
            sess.run(train_op, {images: batch["images"], heatmaps: batch["heatmaps"]})
            after = sess.run(variables)
        for v, b, a in zip(variables, before, after):
            saved["before/" + v.name] = b
            saved["after/" + v.name] = a
    else:
        raise SystemExit("unknown mode %r" % mode)
    np.savez(os.path.join(out, "rank%d.npz" % dist.rank), size=dist.size, **saved)


if __name__ == "__main__":
    main(*sys.argv[1:])
