"""hgpipe: Stacked Hourglass pose estimation on MPII (TF 1.15 / TF 2.x via tf.compat.v1).

TensorFlow is deliberately not a hard requirement: Ascend images ship their own TF 1.15
build with npu_bridge, which pip must not replace. Pick an extra instead:
``pip install hgpipe[cpu]`` or ``hgpipe[gpu]``.
"""
import os
import re

from setuptools import find_packages, setup

HERE = os.path.dirname(os.path.abspath(__file__))
with open(os.path.join(HERE, "hgpipe", "__init__.py")) as handle:
    VERSION = re.search(r'__version__ = "([^"]+)"', handle.read()).group(1)

setup(
    name="hgpipe",
    version=VERSION,
    description="Stacked Hourglass human pose estimation on MPII: offline shards, "
                "a feed-based tf.compat.v1 trainer (CPU/GPU/Ascend NPU), exact PCKh",
    long_description=open(os.path.join(HERE, "README.md")).read(),
    long_description_content_type="text/markdown",
    packages=find_packages(include=["hgpipe", "hgpipe.*"]),
    package_data={"hgpipe": ["data/*.txt", "data/*.json", "data/*.tsv"]},
    python_requires=">=3.7",
    install_requires=[
        "numpy>=1.17",
        "h5py>=2.10",
        "opencv-python-headless>=4.1",
        "click>=7.0",
        "tqdm>=4.40",
        "scipy>=1.3",
    ],
    extras_require={
        # TF 1.15 on Python 3.7 (Ascend's target), or any TF 2.x through tf.compat.v1
        "cpu": ["tensorflow-cpu>=1.15"],
        "gpu": ["tensorflow>=1.15"],
        "test": ["pytest"],
        # only for `hgpipe export --onnx`
        "onnx": ["tf2onnx", "onnxruntime"],
    },
    entry_points={"console_scripts": ["hgpipe=hgpipe.cli:main"]},
    classifiers=[
        "Programming Language :: Python :: 3",
        "Topic :: Scientific/Engineering :: Image Recognition",
    ],
)
