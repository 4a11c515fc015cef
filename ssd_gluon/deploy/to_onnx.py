"""ONNX export of the network without its post-processing (``postprocess`` does that part in
NumPy), and optionally of the whole detector (``onnx_nms`` appends the post-processing in
standard ONNX operators to the same graph).

MXNet's ONNX exporter (``mx.onnx``, mx2onnx) converts neither ``MultiBoxPrior`` nor the
decoding/NMS part (``box_nms`` only partly, our per-class operator not at all), so the
raw-heads file holds what it can convert exactly:

* input ``data``: float32 RGB pixels 0-255, shape (B, 3, S, S), any batch size B; the
  normalization (``normalize.ImageNormalizer``) is inside the graph;
* output ``probs`` (B, N, C+1): softmax class probabilities, column 0 the background;
* output ``offsets`` (B, N, 4): encoded box offsets (dx, dy, dw, dh) before the variances;
* output ``anchors`` (1, N, 4): the default boxes, corner format normalized to [0, 1]. They
  depend only on S, so they are computed once at export time in MXNet and stored in the
  graph as a constant: one file is the whole network.

The model's metadata holds the class names, the input size, the variances and the
post-processing parameters (JSON strings), everything ``postprocess.decode_and_nms`` needs.
The end-to-end file (``export_onnx(..., detect_path=...)``) takes the same input and returns
``ids``, ``scores``, ``boxes`` as the MXNet export does (see ``onnx_nms``).
"""

import json
import os

import mxnet as mx
import numpy as np

from ..constants import VARIANCES
from ..model.weights import device_of
from ..utils.errors import CheckFailedError
from ..utils.files import atomic_save
from . import postprocess
from .normalize import ImageNormalizer
from .onnx_nms import write_detection_onnx
from .verify import verify_onnx

# mx2onnx 1.9.1 translates operators with its opset 12/13 rules but stamps the model with the
# onnx package's newest opset (20 for onnx 1.15); we declare the opset the nodes were written
# for, which also lets older runtimes load the file.
ONNX_OPSET = 13
# The IR version of onnx 1.8, the release that introduced opset 13: the file then loads in
# runtimes older than the onnx package that wrote it (onnx 1.15 would stamp IR 9).
ONNX_IR_VERSION = 7

OUTPUT_NAMES = ("probs", "offsets", "anchors")

# Name of the anchor constant added next to the network's parameters.
_ANCHORS = "onnx_anchor_table"

_DOC = (
    "SSD network without post-processing. Input data: float32 RGB 0-255 (batch, 3, S, S). "
    "Outputs: probs (batch, N, C+1) softmax, column 0 background; offsets (batch, N, 4) "
    "encoded (variances in the metadata); anchors (1, N, 4) corner boxes in [0, 1]. "
    "Decode + per-class NMS: ssd_gluon.deploy.postprocess.decode_and_nms."
)


def anchor_table(net, data_shape):
    """The network's anchors (1, N, 4) for a (data_shape x data_shape) input, from MXNet."""
    _, _, anchors = net(mx.nd.zeros((1, 3, data_shape, data_shape), ctx=device_of(net)))
    return anchors.asnumpy()


def network_symbol(net, data_shape):
    """MXNet symbol with input ``data`` (B, 3, S, S) RGB 0-255 and outputs ``probs``,
    ``offsets``, ``anchors`` (see the module docstring), plus its parameters as a dict of
    NDArrays. The anchor operators drop out of the graph: only constants reach ``anchors``."""
    normalizer = ImageNormalizer(prefix="onnx_normalizer_")
    normalizer.initialize()
    cls_preds, box_preds, _ = net(normalizer(mx.sym.var("data")))  # own anchors unused
    outputs = mx.sym.Group(
        [
            mx.sym.softmax(cls_preds, axis=-1, name="probs"),
            mx.sym.identity(box_preds, name="offsets"),
            mx.sym.identity(mx.sym.var(_ANCHORS), name="anchors"),
        ]
    )
    params = {
        p.name: p.data().as_in_context(mx.cpu())
        for block in (net, normalizer)
        for p in block.collect_params().values()
    }
    params[_ANCHORS] = mx.nd.array(anchor_table(net, data_shape))
    needed = set(outputs.list_arguments()) | set(outputs.list_auxiliary_states())
    return outputs, {k: v for k, v in params.items() if k in needed}


def _tidy_model(model, data_shape, metadata):
    """Make mx2onnx's model self-describing and quiet in onnxruntime: parameters leave the
    graph inputs (onnxruntime otherwise warns once per weight and cannot fold them), unused
    constants go, shapes get their sizes (batch dimension named ``batch``), the opset the
    nodes were translated for is declared, and ``metadata`` (str -> str) is attached."""
    import onnx
    from onnx import helper

    graph = model.graph
    inits = {t.name for t in graph.initializer}
    inputs = [i for i in graph.input if i.name not in inits]
    del graph.input[:]
    graph.input.extend(inputs)
    used = {name for node in graph.node for name in node.input}
    unused = [t for t in graph.initializer if t.name not in used]
    for t in unused:
        graph.initializer.remove(t)
    num_anchors, num_cls = metadata["num_anchors"], metadata["num_classes"] + 1
    shapes = {
        "data": ("batch", 3, data_shape, data_shape),
        "probs": ("batch", num_anchors, num_cls),
        "offsets": ("batch", num_anchors, 4),
        "anchors": (1, num_anchors, 4),
    }
    for value in list(graph.input) + list(graph.output):
        dims = value.type.tensor_type.shape.dim
        for dim, size in zip(dims, shapes[value.name]):
            dim.Clear()
            if isinstance(size, str):
                dim.dim_param = size
            else:
                dim.dim_value = size
    del model.opset_import[:]
    model.opset_import.extend([helper.make_opsetid("", ONNX_OPSET)])
    model.ir_version = ONNX_IR_VERSION
    model.producer_name = "ssd_gluon (mx.onnx)"
    model.doc_string = _DOC
    helper.set_model_props(model, {k: json.dumps(v) for k, v in metadata.items()})
    onnx.checker.check_model(model)
    return model


def _metadata(net, data_shape, anchors, predictor_kwargs):
    """What a user needs beside the file to run the detector: classes, input, and the
    post-processing parameters of the export (stored JSON-encoded in the model)."""
    return dict(
        classes=list(net.classes),
        num_classes=len(net.classes),
        num_anchors=int(anchors.shape[1]),
        data_shape=data_shape,
        input="float32 RGB 0-255, NCHW, (batch, 3, %d, %d)" % (data_shape, data_shape),
        variances=list(VARIANCES),
        postprocess=postprocess.settings(**predictor_kwargs),
    )


def write_onnx(net, path, data_shape, **predictor_kwargs):
    """Convert with ``mx.onnx.export_model`` and tidy the model; writes ``path`` directly
    (see ``export_onnx`` for the atomic, verified version)."""
    try:
        import onnx
    except ImportError:
        raise CheckFailedError(
            "ONNX export needs the onnx package (pip install onnx==1.15.0 "
            "onnxruntime==1.20.1 numpy==1.23.5)"
        ) from None
    sym, params = network_symbol(net, data_shape)
    try:
        mx.onnx.export_model(
            sym,
            params,
            in_shapes=[(1, 3, data_shape, data_shape)],
            in_types=[np.float32],
            onnx_file_path=path,
            dynamic=True,
            dynamic_input_shapes=[(None, 3, data_shape, data_shape)],
        )
    except Exception as err:  # mx2onnx raises assorted types for what it cannot convert
        raise CheckFailedError(
            "%s: mx.onnx could not convert the network: %s: %s" % (path, type(err).__name__, err)
        ) from None
    model = onnx.load(path)
    metadata = _metadata(net, data_shape, params[_ANCHORS], predictor_kwargs)
    onnx.save(_tidy_model(model, data_shape, metadata), path)
    return path


def export_onnx(net, path, data_shape, detect_path=None, **predictor_kwargs):
    """Write ``path`` (.onnx, the raw heads) and, with ``detect_path``, the end-to-end model
    built from it (``onnx_nms.write_detection_onnx``); verify them (``verify.verify_onnx``)
    before they appear: each file is written under a temporary name and renamed only after
    the check of both passed, so a failure leaves nothing behind. Returns ``verify_onnx``'s
    dict."""
    for target in (path, detect_path):
        if target is not None:
            os.makedirs(os.path.dirname(os.path.abspath(target)), exist_ok=True)
    report = {}

    def save_detect(raw_tmp, tmp):
        try:
            write_detection_onnx(raw_tmp, tmp)
            report.update(
                verify_onnx(net, raw_tmp, data_shape, detect_path=tmp, **predictor_kwargs)
            )
        except CheckFailedError as err:  # name the file the user asked for
            raise CheckFailedError(str(err).replace(tmp, detect_path)) from None

    def save(tmp):
        try:
            write_onnx(net, tmp, data_shape, **predictor_kwargs)
            if detect_path is None:
                report.update(verify_onnx(net, tmp, data_shape, **predictor_kwargs))
            else:  # renamed first, once both files passed; then the raw file
                atomic_save(lambda detect_tmp: save_detect(tmp, detect_tmp), detect_path)
        except CheckFailedError as err:  # name the file the user asked for
            raise CheckFailedError(str(err).replace(tmp, path)) from None

    atomic_save(save, path)
    return report
