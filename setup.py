from setuptools import find_packages, setup

setup(
    name="ssd_gluon",
    version="0.1.0",
    description="SSD (Single Shot MultiBox Detector) in MXNet Gluon with Horovod training",
    packages=find_packages(include=["ssd_gluon", "ssd_gluon.*"]),
    python_requires=">=3.8,<3.12",
    install_requires=["numpy==1.23.5", "mxnet>=1.9.1,<2", "gluoncv", "opencv-python",
                      "matplotlib", "tqdm"],
)
