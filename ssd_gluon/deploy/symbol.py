"""Export the detector (normalization + network + decoding + NMS) as MXNet symbol + params
that load without this package, and load such an export back (``verify`` checks one in a
fresh process)."""

import json
import os
import tempfile

import mxnet as mx

from .. import ops
from ..utils.errors import MissingFileError, UserError
from ..utils.files import write_json
from .normalize import deploy_block


def export_detector(
    net, prefix, data_shape, input_dtype="float32", ops="builtin", **predictor_kwargs
):
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
    meta = dict(
        data_shape=data_shape,
        input_dtype=input_dtype,
        classes=list(net.classes),
        ops=ops,
        input="RGB pixels 0-255, (B, 3, %d, %d), %s" % (data_shape, data_shape, input_dtype),
        outputs="ids (B,K,1), scores (B,K,1), boxes (B,K,4) in input pixels; -1 rows are padding",
        predictor=predictor_kwargs,
    )
    write_json(prefix + "-meta.json", meta)
    return prefix + "-symbol.json", prefix + "-0000.params"


def load_exported(prefix, ctx=None):
    """(SymbolBlock, meta) of files written by ``export_detector``; loads the operator
    library when the graph needs it. One-line errors name the missing or broken file."""
    for suffix in ("-symbol.json", "-0000.params", "-meta.json"):
        if not os.path.isfile(prefix + suffix):
            raise MissingFileError("%s%s: exported file not found" % (prefix, suffix))
    with open(prefix + "-meta.json") as f:
        try:
            meta = json.load(f)
        except ValueError as err:
            raise UserError(
                "%s-meta.json: not an export description (%s)" % (prefix, err)
            ) from None
    if meta.get("ops") == "custom":
        ops.load()
    try:
        block = mx.gluon.SymbolBlock.imports(
            prefix + "-symbol.json", ["data"], prefix + "-0000.params", ctx=ctx or mx.cpu()
        )
    except (mx.base.MXNetError, ValueError) as err:
        raise UserError(
            "%s-symbol.json: cannot load the exported graph (%s)"
            % (prefix, str(err).strip().splitlines()[-1][:200])
        ) from None
    return block, meta


def check_input_size(meta, prefix, data_shape):
    """An exported graph runs at the size it was exported for."""
    if data_shape is not None and data_shape != meta["data_shape"]:
        raise UserError(
            "%s-symbol.json: exported for %dx%d input, not %dx%d (export again "
            "with --data-shape %d)"
            % (prefix, meta["data_shape"], meta["data_shape"], data_shape, data_shape, data_shape)
        )
