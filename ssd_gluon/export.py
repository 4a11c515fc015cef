"""Export the detector (normalization + network + decoding + NMS) as MXNet symbol + params
that load without this package, and check the export in a fresh process."""
import json
import os
import subprocess
import sys
import tempfile

import mxnet as mx
import numpy as np
from mxnet.gluon import HybridBlock, nn

from .data import MEAN_RGB, STD_RGB
from .predictor import SSDPredictor


class ImageNormalizer(HybridBlock):
    """(B, 3, H, W) RGB pixels 0-255 (float32) -> (pixel - mean) / std."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        with self.name_scope():
            self.mean = self.params.get_constant("mean", mx.nd.array(MEAN_RGB).reshape((1, 3, 1, 1)))
            self.std = self.params.get_constant("std", mx.nd.array(STD_RGB).reshape((1, 3, 1, 1)))

    def hybrid_forward(self, F, x, mean, std):
        return F.broadcast_div(F.broadcast_sub(x, mean), std)


def deploy_block(net, **predictor_kwargs):
    """HybridBlock taking raw RGB pixels (B, 3, H, W) float32 0-255 and returning
    ``(ids (B,K,1), scores (B,K,1), bboxes (B,K,4))`` in input pixels."""
    normalizer = ImageNormalizer(prefix="normalizer_")
    normalizer.initialize()                  # constants only: the network keeps its weights
    block = nn.HybridSequential(prefix="")
    block.add(normalizer, SSDPredictor(net, **predictor_kwargs))
    return block


def export_detector(net, prefix, data_shape, **predictor_kwargs):
    """Write ``PREFIX-symbol.json`` and ``PREFIX-0000.params`` for a fixed (data_shape x
    data_shape) input named ``data``. Files appear only when both are complete."""
    block = deploy_block(net, **predictor_kwargs)
    block.hybridize()
    block(mx.nd.zeros((1, 3, data_shape, data_shape)))
    out_dir = os.path.dirname(os.path.abspath(prefix))
    os.makedirs(out_dir, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out_dir) as tmp:
        tmp_prefix = os.path.join(tmp, "model")
        block.export(tmp_prefix, epoch=0)
        os.replace(tmp_prefix + "-0000.params", prefix + "-0000.params")
        os.replace(tmp_prefix + "-symbol.json", prefix + "-symbol.json")
    return prefix + "-symbol.json", prefix + "-0000.params"


# Runs in a fresh interpreter that imports only mxnet (and the ops library when given).
_CHECK_SCRIPT = r"""
import json, sys
import mxnet as mx, numpy as np
args = json.loads(sys.argv[1])
if args["library"]:
    mx.library.load(args["library"], verbose=False)
block = mx.gluon.SymbolBlock.imports(args["prefix"] + "-symbol.json", ["data"],
                                     args["prefix"] + "-0000.params")
outs = block(mx.nd.array(np.load(args["input"])))
np.savez(args["output"], *[o.asnumpy() for o in outs])
"""


def verify_export(net, prefix, data_shape, library=None, atol=1e-4, **predictor_kwargs):
    """Run the exported files in a fresh process on a test image and compare with the Gluon
    detector. Returns the number of detections compared; raises RuntimeError on mismatch."""
    rng = np.random.RandomState(0)
    image = rng.uniform(0, 255, size=(1, 3, data_shape, data_shape)).astype(np.float32)
    expected = [o.asnumpy() for o in deploy_block(net, **predictor_kwargs)(mx.nd.array(image))]
    with tempfile.TemporaryDirectory() as tmp:
        np.save(os.path.join(tmp, "in.npy"), image)
        out_path = os.path.join(tmp, "out.npz")
        args = dict(prefix=os.path.abspath(prefix), input=os.path.join(tmp, "in.npy"),
                    output=out_path, library=library)
        proc = subprocess.run([sys.executable, "-c", _CHECK_SCRIPT, json.dumps(args)],
                              capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError("%s-symbol.json: reloading in a fresh process failed: %s"
                               % (prefix, proc.stderr.strip().splitlines()[-1:]))
        got = np.load(out_path)
        got = [got["arr_%d" % i] for i in range(len(expected))]
    for name, a, b in zip(("ids", "scores", "bboxes"), expected, got):
        if a.shape != b.shape or not np.allclose(a, b, atol=atol, rtol=1e-4):
            raise RuntimeError("%s: exported %s differ from the Gluon model (max diff %s)"
                               % (prefix, name, np.abs(a - b).max() if a.shape == b.shape else
                                  "shape %s vs %s" % (b.shape, a.shape)))
    return int((expected[0] >= 0).sum())
