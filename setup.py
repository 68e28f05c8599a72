"""hgpipe: Stacked Hourglass pose estimation on MPII (TF 1.15 / TF 2.x via tf.compat.v1).

TensorFlow is deliberately not a hard requirement: Ascend images ship their own TF 1.15
build with npu_bridge, which pip must not replace. Pick an extra instead:
``hgpipe[tf115]`` (Python 3.7, TF 1.15.0), ``hgpipe[cpu]`` or ``hgpipe[gpu]`` (TF 2.x).
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
        # Python 3.7 only: the runtime Ascend images ship, with the versions bin/test's py37
        # lane installs (requirements/py37-tf115.txt; tests/test_install.py checks they agree)
        "tf115": ["tensorflow-cpu==1.15.0", "numpy==1.18.5", "protobuf==3.20.3",
                  "h5py==3.8.0", "scipy==1.7.3", "opencv-python-headless==4.8.1.78",
                  "click==8.1.8"],
        # Python 3.8+: current TF 2.x through tf.compat.v1, as the py311 lane; 2.12 is the
        # oldest tested (there is none for Python 3.7: pip stops and names it; use tf115)
        "cpu": ["tensorflow-cpu>=2.12"],
        "gpu": ["tensorflow>=2.12"],
        "test": ["pytest"],
        # only for `hgpipe export --onnx`; on Python 3.7 the py37 lane's versions
        # (onnxruntime 1.10.0 is the newest that accepts numpy 1.18)
        "onnx": ["tf2onnx==1.14.0; python_version < '3.8'",
                 "onnx==1.14.1; python_version < '3.8'",
                 "onnxruntime==1.10.0; python_version < '3.8'",
                 "tf2onnx; python_version >= '3.8'", "onnxruntime; python_version >= '3.8'"],
        # only for COCO-format keypoint files (prepare) and OKS AP (pck of such a set):
        # pycocotools reads the files and scores them (COCOeval). An extra, not a
        # requirement: MPII and LSP need none of it. On Python 3.7 the py37 lane's
        # version (2.0.7, the newest with a cp37 wheel)
        "coco": ["pycocotools==2.0.7; python_version < '3.8'",
                 "pycocotools>=2.0.7; python_version >= '3.8'"],
    },
    entry_points={"console_scripts": ["hgpipe=hgpipe.cli:main"]},
    classifiers=[
        "Programming Language :: Python :: 3",
        "Topic :: Scientific/Engineering :: Image Recognition",
    ],
)
