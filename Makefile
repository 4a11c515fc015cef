# ssd_gluon: set-up, demo, tests, benchmarks.
#   make demo            set up .venv, then train/eval/export the compact model on the embedded sample
#   make test            set up .venv, then check format and lint, then run the test suite
#   make lint            the format and lint checks alone (ruff; `ruff format .` fixes format)
#   make bench           side-by-side benchmarks (ours / peer)
#   make ops             rebuild the operator library after editing ops/ (setup does it once)
#   GPU=cu112 make ...   install mxnet-cu112 and build horovod with NCCL instead (GPU machines)

PYTHON ?= python3.11
GPU ?=
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
MXNET_PKG := $(if $(GPU),mxnet-$(GPU)==1.9.1,mxnet==1.9.1)
HVD_GPU := $(if $(GPU),HOROVOD_GPU_OPERATIONS=NCCL,)

# The library's dependencies (setup.py) plus what the tests and benchmarks use beside it:
# gluoncv (the peer), psutil (benchmarks), onnx/onnxruntime (ONNX export), pytest, ruff.
# Everything in one pip command with numpy pinned: a later separate install
# would upgrade numpy past 1.23.5 and break `import mxnet` (np.bool). onnx stays below 1.19:
# MXNet 1.9.1's exporter (mx.onnx) imports onnx.mapping, which 1.19 removed.
DEPS := numpy==1.23.5 $(MXNET_PKG) gluoncv==0.10.5.post0 opencv-python==4.11.0.86 \
        matplotlib==3.10.9 scipy==1.15.3 pandas==2.3.3 pytest==8.3.4 tqdm==4.70.1 \
        pycocotools==2.0.10 onnx==1.15.0 onnxruntime==1.20.1 protobuf==7.36.2 ruff==0.16.9 \
        wheel cloudpickle psutil pyyaml packaging cffi

.PHONY: setup demo test lint bench ops clean-sample

setup: $(VENV)/.done

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.deps: $(VENV)/bin/python
	$(PIP) install --upgrade pip
	$(PIP) install $(DEPS)
	touch $@

$(VENV)/.horovod: $(VENV)/.deps
	$(HVD_GPU) HOROVOD_WITH_MXNET=1 HOROVOD_WITH_GLOO=1 HOROVOD_WITHOUT_MPI=1 \
	HOROVOD_WITHOUT_TENSORFLOW=1 HOROVOD_WITHOUT_PYTORCH=1 \
	$(PIP) install --no-build-isolation --no-cache-dir horovod==0.28.1 numpy==1.23.5
	touch $@

# pip's build_ext compiles ops/ into ssd_gluon/_lib/libssd_ops.so (CUDA too when nvcc is found).
$(VENV)/.done: $(VENV)/.horovod setup.py $(wildcard ops/*.cc ops/*.h ops/*.cu ops/*.cuh ops/build.py)
	$(PIP) install --no-build-isolation --no-deps -e .
	touch $@

ops: $(VENV)/.horovod
	$(PY) ops/build.py

demo: setup
	$(PY) scripts/demo.py --out runs/demo

lint: setup
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/ruff check .

test: lint
	$(PY) -m pytest -q tests

bench: setup
	$(PY) benchmarks/bench.py all
