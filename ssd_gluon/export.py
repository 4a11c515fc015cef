"""Export the detector (normalization + network + decoding + NMS) as MXNet symbol + params
that load without this package, and check the export in a fresh process."""
import json
import os
import tempfile

import mxnet as mx
import numpy as np
from mxnet.gluon import HybridBlock, nn

from .data import MEAN_RGB, STD_RGB
from .files import write_json
from .fresh import run_in_fresh_process
from .predictor import SSDPredictor


INPUT_DTYPES = ("float32", "uint8")


class ImageNormalizer(HybridBlock):
    """(B, 3, H, W) RGB pixels 0-255 (float32, or uint8 cast inside) -> (pixel - mean) / std."""

    def __init__(self, input_dtype="float32", **kwargs):
        super().__init__(**kwargs)
        if input_dtype not in INPUT_DTYPES:
            raise ValueError("input dtype must be one of %s, not %r" % (INPUT_DTYPES, input_dtype))
        self.input_dtype = input_dtype
        with self.name_scope():
            self.mean = self.params.get_constant("mean", mx.nd.array(MEAN_RGB).reshape((1, 3, 1, 1)))
            self.std = self.params.get_constant("std", mx.nd.array(STD_RGB).reshape((1, 3, 1, 1)))

    def hybrid_forward(self, F, x, mean, std):
        if self.input_dtype != "float32":
            x = F.cast(x, dtype="float32")
        return F.broadcast_div(F.broadcast_sub(x, mean), std)


def deploy_block(net, input_dtype="float32", **predictor_kwargs):
    """HybridBlock taking raw RGB pixels (B, 3, H, W) 0-255 (``input_dtype``) and returning
    ``(ids (B,K,1), scores (B,K,1), bboxes (B,K,4))`` in input pixels."""
    normalizer = ImageNormalizer(input_dtype, prefix="normalizer_")
    normalizer.initialize()                  # constants only: the network keeps its weights
    block = nn.HybridSequential(prefix="")
    block.add(normalizer, SSDPredictor(net, **predictor_kwargs))
    return block


def export_detector(net, prefix, data_shape, input_dtype="float32", ops="builtin",
                    **predictor_kwargs):
    """Write ``PREFIX-symbol.json``, ``PREFIX-0000.params`` and ``PREFIX-meta.json`` (input
    size and dtype, class names, operators) for a fixed (data_shape x data_shape) input
    named ``data``. Files appear only when complete."""
    block = deploy_block(net, input_dtype, **predictor_kwargs)
    block.hybridize()
    block(mx.nd.zeros((1, 3, data_shape, data_shape), dtype=input_dtype))
    out_dir = os.path.dirname(os.path.abspath(prefix))
    os.makedirs(out_dir, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out_dir) as tmp:
        tmp_prefix = os.path.join(tmp, "model")
        block.export(tmp_prefix, epoch=0)
        os.replace(tmp_prefix + "-0000.params", prefix + "-0000.params")
        os.replace(tmp_prefix + "-symbol.json", prefix + "-symbol.json")
    meta = dict(data_shape=data_shape, input_dtype=input_dtype, classes=list(net.classes),
                ops=ops, input="RGB pixels 0-255, (B, 3, %d, %d), %s" % (data_shape, data_shape,
                                                                      input_dtype),
                outputs="ids (B,K,1), scores (B,K,1), boxes (B,K,4) in input pixels; -1 rows "
                        "are padding", predictor=predictor_kwargs)
    write_json(prefix + "-meta.json", meta)
    return prefix + "-symbol.json", prefix + "-0000.params"


def load_exported(prefix, ctx=None):
    """(SymbolBlock, meta) of files written by ``export_detector``; loads the operator
    library when the graph needs it. One-line errors name the missing or broken file."""
    for suffix in ("-symbol.json", "-0000.params", "-meta.json"):
        if not os.path.isfile(prefix + suffix):
            raise FileNotFoundError("%s%s: exported file not found" % (prefix, suffix))
    with open(prefix + "-meta.json") as f:
        try:
            meta = json.load(f)
        except ValueError as err:
            raise ValueError("%s-meta.json: not an export description (%s)" % (prefix, err)) from None
    if meta.get("ops") == "custom":
        from . import ops
        ops.load()
    try:
        block = mx.gluon.SymbolBlock.imports(prefix + "-symbol.json", ["data"],
                                             prefix + "-0000.params", ctx=ctx or mx.cpu())
    except (mx.base.MXNetError, ValueError) as err:
        raise ValueError("%s-symbol.json: cannot load the exported graph (%s)"
                         % (prefix, str(err).strip().splitlines()[-1][:200])) from None
    return block, meta


def check_input_size(meta, prefix, data_shape):
    """An exported graph runs at the size it was exported for."""
    if data_shape is not None and data_shape != meta["data_shape"]:
        raise ValueError("%s-symbol.json: exported for %dx%d input, not %dx%d (export again "
                         "with --data-shape %d)" % (prefix, meta["data_shape"], meta["data_shape"],
                                                    data_shape, data_shape, data_shape))


# Runs in a fresh interpreter that imports only mxnet (and the ops library when given).
_CHECK_SCRIPT = r"""
import json, sys
import mxnet as mx, numpy as np
args = json.loads(sys.argv[1])
if args["library"]:
    mx.library.load(args["library"], verbose=False)
block = mx.gluon.SymbolBlock.imports(args["prefix"] + "-symbol.json", ["data"],
                                     args["prefix"] + "-0000.params")
image = np.load(args["input"])
outs = block(mx.nd.array(image, dtype=image.dtype))
np.savez(args["output"], *[o.asnumpy() for o in outs])
"""


def verify_export(net, prefix, data_shape, library=None, atol=1e-4, input_dtype="float32",
                  **predictor_kwargs):
    """Run the exported files in a fresh process on a test image and compare with the Gluon
    detector. Returns the number of detections compared; raises RuntimeError on mismatch."""
    rng = np.random.RandomState(0)
    image = rng.uniform(0, 255, size=(1, 3, data_shape, data_shape)).astype(input_dtype)
    block = deploy_block(net, input_dtype, **predictor_kwargs)
    expected = [o.asnumpy() for o in block(mx.nd.array(image, dtype=input_dtype))]
    got = run_in_fresh_process(_CHECK_SCRIPT, image, "%s-symbol.json: reloading in a fresh "
                               "process failed" % prefix, prefix=os.path.abspath(prefix),
                               library=library)
    for name, a, b in zip(("ids", "scores", "bboxes"), expected, got):
        if a.shape != b.shape or not np.allclose(a, b, atol=atol, rtol=1e-4):
            raise RuntimeError("%s: exported %s differ from the Gluon model (max diff %s)"
                               % (prefix, name, np.abs(a - b).max() if a.shape == b.shape else
                                  "shape %s vs %s" % (b.shape, a.shape)))
    return int((expected[0] >= 0).sum())
