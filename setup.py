"""Installs ssd_gluon and compiles the operator library from ops/ (see ops/build.py).

The library is built by ``build_ext`` (run by ``pip install [-e] .``) into
``ssd_gluon/_lib/libssd_ops.so``; a failed build stops the install with the compiler's
message. ``SSD_WITH_CUDA=0|1`` forces the CUDA part off or on (default: when nvcc is found).
"""

import importlib.util
import os
import re

from setuptools import Extension, find_packages, setup
from setuptools.command.build_ext import build_ext

HERE = os.path.dirname(os.path.abspath(__file__))
LIB_NAME = "ssd_gluon._lib.libssd_ops"


def _ops_build():
    spec = importlib.util.spec_from_file_location(
        "ssd_ops_build", os.path.join(HERE, "ops", "build.py")
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class BuildOps(build_ext):
    """Builds the lib_api operator library with ops/build.py instead of distutils' compiler
    (it needs mxnet's lib_api.cc, OpenMP and optionally nvcc)."""

    def get_ext_filename(self, fullname):
        return os.path.join(*fullname.split(".")) + ".so"

    def copy_extensions_to_source(self):
        # Editable installs copy the library into the source tree, whose _lib/ a fresh clone
        # does not have (built files are not committed).
        os.makedirs(os.path.join(HERE, "ssd_gluon", "_lib"), exist_ok=True)
        super().copy_extensions_to_source()

    def build_extension(self, ext):
        ops_build = _ops_build()
        try:
            ops_build.build(os.path.abspath(self.get_ext_fullpath(ext.name)))
        except ops_build.BuildError as err:
            raise SystemExit("ssd_gluon: building the ops library failed: %s" % err)


def _version():
    """``__version__`` of ssd_gluon/__init__.py, read without importing the package."""
    with open(os.path.join(HERE, "ssd_gluon", "__init__.py")) as f:
        return re.search(r'^__version__ = "([^"]+)"', f.read(), re.M).group(1)


setup(
    name="ssd_gluon",
    version=_version(),
    description="SSD (Single Shot MultiBox Detector) in MXNet Gluon with Horovod training",
    packages=find_packages(include=["ssd_gluon", "ssd_gluon.*"]),
    ext_modules=[Extension(LIB_NAME, sources=[])],
    cmdclass={"build_ext": BuildOps},
    python_requires=">=3.8,<3.12",
    # gluoncv is the peer of the benchmarks and tests, and the source of --pretrained-base
    # gluoncv (imported only then): an extra, not a dependency of the library.
    install_requires=[
        "numpy==1.23.5",
        "mxnet>=1.9.1,<2",
        "opencv-python",
        "matplotlib",
        "tqdm",
        "pycocotools",
    ],
    extras_require={
        "gluoncv": ["gluoncv==0.10.5.post0"],
        "onnx": ["onnx==1.15.0", "onnxruntime==1.20.1"],
    },
)
