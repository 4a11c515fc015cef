"""SSD inference on the CPU, side by side in one process on the same images, timed
alternately: our detector (custom and built-in operators, hybridized) against gluoncv's
same-named model with the same weights (its own hybridized forward and NMS), and our
deployable paths against the same gluoncv model: the end-to-end ONNX graph in onnxruntime and
the int8 export (MXNet oneDNN). Every side takes RGB pixels 0-255 and returns detections.
Rows: (case, ours images/s, gluoncv images/s, peer, 'images/s'); the table's ours / peer is
then a speed ratio (above 1: ours is faster)."""

import os
import tempfile

import mxnet as mx

from ssd_gluon.constants import MEAN_RGB, STD_RGB
from ssd_gluon.deploy.loading import load_detector
from ssd_gluon.deploy.quantize import export_quantized
from ssd_gluon.deploy.to_onnx import export_onnx

from common import make_records, time_pair

MODELS = ("ssd_300_vgg16_atrous_voc",)
BATCHES = (1, 8)


class _Normalized(mx.gluon.HybridBlock):
    """gluoncv's detector behind the same pixel input as ours: (x / 255 - mean) / std."""

    def __init__(self, net):
        super().__init__()
        self.net = net
        self._mean = mx.nd.array(MEAN_RGB).reshape((1, 3, 1, 1))
        self._std = mx.nd.array(STD_RGB).reshape((1, 3, 1, 1))

    def forward(self, x):
        return self.net(mx.nd.broadcast_div(mx.nd.broadcast_sub(x / 255.0, self._mean), self._std))


def _gluoncv_model(name, size, work_dir):
    """gluoncv's ``name`` with random weights, hybridized, and the file of those weights."""
    from gluoncv import model_zoo

    net = model_zoo.get_model(name, pretrained=False, pretrained_base=False)
    net.initialize()
    net.hybridize(static_alloc=True)
    net(mx.nd.zeros((1, 3, size, size)))
    path = os.path.join(work_dir, name + ".params")
    net.save_parameters(path)
    return _Normalized(net), path


def _onnx_session(model, params, size, work_dir):
    """onnxruntime on our end-to-end graph (exported and verified as the tools do)."""
    import onnxruntime

    from ssd_gluon.model.zoo import load_network

    net = load_network(model, params, gluoncv=True, ops="builtin")
    detect = os.path.join(work_dir, model + ".detect.onnx")
    export_onnx(net, os.path.join(work_dir, model + ".onnx"), size, detect_path=detect)
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = int(os.environ.get("OMP_NUM_THREADS", os.cpu_count() or 1))
    return onnxruntime.InferenceSession(detect, options, providers=["CPUExecutionProvider"])


def _int8_block(model, params, size, work_dir, log):
    """Our int8 export of the same weights (calibrated on VOC-like records), loaded back."""
    from ssd_gluon.model.zoo import load_network

    rec, _ = make_records(os.path.join(work_dir, "calib"), 32)
    net = load_network(model, params, gluoncv=True, ops="builtin")
    prefix = os.path.join(work_dir, model + "-int8")
    export_quantized(net, prefix, rec, size, num_calib_batches=2, batch_size=16)
    log("  int8 export calibrated on 32 VOC-like images: %s" % prefix)
    block = load_detector(symbol=prefix).block
    block.hybridize(static_alloc=True)
    return block


def _mxnet_call(block, x):
    return lambda: block(x)


def _onnx_call(session, pixels):
    """One onnxruntime run (its outputs are NumPy, complete when it returns)."""

    def run():
        session.run(None, {"data": pixels})
        return []

    return run


def bench_infer(repeats=20, log=print, models=MODELS, batches=BATCHES):
    """Rows for each model and batch size: ours (custom ops), ours (built-in ops), ONNX end to
    end, int8, each against gluoncv's hybridized model in images/s."""
    rows = []
    with tempfile.TemporaryDirectory(prefix="ssd_bench_infer-") as work_dir:
        for model in models:
            size = 512 if "512" in model else 300
            gluoncv, params = _gluoncv_model(model, size, work_dir)
            sides = {}
            for impl in ("custom", "builtin"):
                block = load_detector(model=model, params=params, gluoncv=True, ops=impl).block
                block.hybridize(static_alloc=True)
                sides["ours, %s ops" % impl] = block
            session = _onnx_session(model, params, size, work_dir)
            sides["ONNX end to end (onnxruntime)"] = session
            sides["int8 (MXNet oneDNN)"] = _int8_block(model, params, size, work_dir, log)
            for batch in batches:
                x = mx.nd.random.uniform(0, 255, shape=(batch, 3, size, size))
                pixels = x.asnumpy()
                for name, side in sides.items():
                    run = _onnx_call(side, pixels) if side is session else _mxnet_call(side, x)
                    ours, peer = time_pair(run, lambda: gluoncv(x), repeats=repeats, warmup=1)
                    case = "%s b%d: %s" % (model, batch, name)
                    rows.append((case, batch / ours, batch / peer, "gluoncv", "images/s"))
                    log(
                        "%-70s %8.2f vs %8.2f images/s  x%.2f"
                        % (case, batch / ours, batch / peer, peer / ours)
                    )
    return rows
