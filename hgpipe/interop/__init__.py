"""Weights from other frameworks: PyTorch checkpoint files read without torch, and the
PyTorch Stacked Hourglass families (bearpaw/pytorch-pose, pytorch_stacked_hourglass)
mapped onto hgpipe's network."""
