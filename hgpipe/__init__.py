"""hgpipe: Stacked Hourglass pose estimation on MPII, from annotations to PCKh.

Pipeline: ``hgpipe prepare`` (offline crops + heatmaps into HDF5 shards) ->
``hgpipe train`` (tf.compat.v1 Session fed from a prefetch thread) ->
``hgpipe pck`` / ``predict`` / ``export``.
"""
__version__ = "0.1.0"
