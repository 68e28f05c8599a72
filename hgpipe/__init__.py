"""hgpipe: Stacked Hourglass pose estimation on MPII, from annotations to PCKh.

Pipeline: ``hgpipe prepare`` (offline crops + heatmaps into HDF5 shards) ->
``hgpipe train`` (tf.compat.v1 Session fed from a prefetch thread) ->
``hgpipe pck`` / ``predict`` / ``export``.

The same steps from Python (:mod:`hgpipe.api`, the functions the commands call)::

    import hgpipe
    hgpipe.prepare(mpii_dir, shards_dir, config="configs/tiny.cfg")
    hgpipe.train_model(shards_dir, logdir, config="configs/tiny.cfg")
    hgpipe.evaluate(logdir, shards_dir)
    with hgpipe.load(logdir) as model:
        pose = model.predict(image, color="rgb")

The API is looked up on first use (PEP 562 ``__getattr__``), so ``import hgpipe`` stays
as light as it was: no TensorFlow, no h5py, no OpenCV until something needs them.
"""
import importlib

__version__ = "0.1.0"

# train_model, not train: hgpipe.train is the subpackage of the trainer, and importing it
# sets that attribute of this package
API = ("load", "predict_files", "prepare", "train_model", "evaluate", "Model")
__all__ = list(API) + ["__version__"]


def __getattr__(name):
    if name in API:
        return getattr(importlib.import_module("hgpipe.api"), name)
    raise AttributeError("module 'hgpipe' has no attribute %r" % (name,))


def __dir__():
    return sorted(list(globals()) + list(API))
