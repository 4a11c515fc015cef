"""Post-training int8 quantization of the detector for the CPU (MXNet's oneDNN backend),
written as an export in ``symbol.export_detector``'s format: ``load_exported`` and
``loading.load_detector`` (so ``eval_voc.py --symbol`` and ``detect.py --symbol``) run it
unchanged.

The whole deploy block (pixels -> normalization -> network -> decoding + NMS) goes through
``mxnet.contrib.quantization.quantize_net_v2`` (quantize mode 'full'): oneDNN fuses each
Convolution with its BatchNorm and ReLU, and every node with an int8 kernel is quantized
unless it is excluded. What stays float32 (``float32_layers``):

- everything outside the network: the input normalization and the predictor (box decoding,
  per-class top-k, NMS). Its Concat of [class, score, box] rows and the additions of the box
  decoding have int8 kernels and would otherwise be quantized, rounding class ids and box
  corners to 8 bits;
- the network's Flatten and Concat (gluoncv's SSD recipe excludes them too): one quantized
  Concat shares a single scale over the heads of every source layer, and the anchors
  (constants in [0, 1]) would be rounded to 1/127 of the image (2.4 px at 300x300). Kept
  float32, each head convolution dequantizes its own int32 result;
- what oneDNN has no int8 kernel for stays float32 by itself, with (de)quantize nodes
  around it: transpose, Reshape, the ``relu`` operator after fc6/fc7 (the convolutions
  fuse only ``Activation``), SSD300's L2Normalization, MultiBoxPrior, the broadcasts.

Calibration runs the float32 graph on the first batches of a record file (RGB pixels 0-255
resized to the export's input, as the deployed graph takes them) and sets each quantized
tensor's range from their minimum and maximum ('naive') or from the threshold minimising the
KL divergence of its histogram ('entropy'). The files are written in a temporary folder
beside PREFIX, reloaded in a fresh process that imports only mxnet, and moved into place only
when that run reproduces the calibrated model's detections: an export is complete or absent.
An int8 model does not match the float32 one exactly; its accuracy is measured separately
(``eval_voc.py --symbol``).
"""

import json
import os
import warnings

import mxnet as mx
from mxnet.contrib import quantization

from .. import ops
from ..data.loader import val_iter
from ..data.records import check_rec, read_classes
from ..data.verify import Records, open_records
from ..model.weights import device_of
from ..utils.errors import CheckFailedError, UserError
from ..utils.files import output_folder
from .normalize import deploy_block
from .symbol import write_export
from .verify import _SYMBOL_CHECK, compare_detections, run_in_fresh_process

CALIB_MODES = ("naive", "entropy")
# 'auto': uint8 for tensors calibrated non-negative (after a ReLU), int8 for the others.
QUANTIZED_DTYPES = ("auto", "int8", "uint8")
# Network operators with int8 kernels that are kept float32 (see the module doc).
FLOAT32_OPS = ("Flatten", "Concat")
# Calibration images the fresh-process check runs (real images, so that there are detections).
CHECK_IMAGES = 2


def open_calibration_records(rec_path, classes, strict=False):
    """The checked ``Records`` of a calibration file for a model detecting ``classes``.

    A file whose ``PREFIX.classes.txt`` names another number of classes is an error (it was
    packed for another model); without that file, records with class indices outside the
    model's are bad records, left out with a warning (``strict``: an error) as in
    evaluation. Images of any size are fine: they are resized to the export's input."""
    rec_path = check_rec(rec_path)
    names = read_classes(rec_path)
    if names is not None and len(names) != len(classes):
        raise UserError(
            "%s: calibration records of %d classes (%s), the model detects %d (%s)"
            % (rec_path, len(names), ",".join(names), len(classes), ",".join(classes))
        )
    return open_records(rec_path, len(classes), strict)


def output_prefix(prefix, flag="--out"):
    """Check that the export PREFIX can be written (its folder is created); a one-line error
    naming ``flag`` otherwise. Returns the folder."""
    if not os.path.basename(prefix) or os.path.isdir(prefix):
        raise UserError(
            "%s %s: is a folder; give a file PREFIX such as %s"
            % (flag, prefix, os.path.join(prefix, "model_int8"))
        )
    return output_folder(os.path.dirname(os.path.abspath(prefix)), flag)


def calibration_batches(records, data_shape, batch_size, num_batches, threads=2):
    """The first ``num_batches`` batches of ``records`` (a checked ``Records``), resized to
    ``data_shape`` x ``data_shape``, as the calibration iterator ``quantize_net_v2`` takes.

    Returns ``(iterator, images)``: an ``mx.io.NDArrayIter`` named 'data' of float32 RGB
    pixels 0-255 (B, 3, S, S) (the input of the deployed graph; the normalization is inside
    it), the last batch padded by repetition (which leaves min/max unchanged), and the
    (N, 3, S, S) images it holds (fewer than ``num_batches`` x ``batch_size`` when the file
    is shorter)."""
    batches = val_iter(records, data_shape, batch_size, threads=threads, normalize=False)
    images = []
    for i, batch in enumerate(batches):
        if i >= num_batches:
            break
        # The reader reuses its buffers: keep a copy of the real (unpadded) images.
        images.append(batch.data[0][: batch.data[0].shape[0] - batch.pad].copy())
    pixels = mx.nd.concat(*images, dim=0)
    iterator = mx.io.NDArrayIter(
        {"data": pixels}, batch_size=min(batch_size, pixels.shape[0]), last_batch_handle="pad"
    )
    return iterator, pixels


def float32_layers(block, keep_float=()):
    """Names of the nodes of ``block`` (a ``deploy_block``) excluded from quantization, and
    of those among them inside the network: ``(all, network)``. Excluded are every node of
    the normalizer and of the predictor (decoding + NMS), the network's ``FLOAT32_OPS``
    nodes, and the nodes named in ``keep_float`` (e.g. 'vggatrous0_conv0_fwd'; an unknown
    name is an error)."""
    graph = mx.sym.Group(list(block(mx.sym.var("data"))))
    nodes = [n for n in json.loads(graph.tojson())["nodes"] if n["op"] != "null"]
    outside = tuple(block[i].prefix for i in range(len(block)))  # normalizer, predictor
    names = {n["name"] for n in nodes}
    unknown = [name for name in keep_float if name not in names]
    if unknown:
        convs = [n["name"] for n in nodes if n["op"] == "Convolution"]
        raise UserError(
            "--keep-float %s: no such layer in the graph (its convolutions: %s ... %s)"
            % (",".join(unknown), ", ".join(convs[:3]), convs[-1])
        )
    excluded, network = [], []
    for n in nodes:
        if n["name"].startswith(outside):
            excluded.append(n["name"])
        elif n["op"] in FLOAT32_OPS or n["name"] in keep_float:
            excluded.append(n["name"])
            network.append(n["name"])
    return excluded, network


def quantize_detector(
    net, calib, calib_mode="naive", quantized_dtype="auto", keep_float=(), **predictor_kwargs
):
    """The int8 detector of ``net`` (a Gluon SSD with trained weights, on the CPU),
    calibrated on ``calib`` (``calibration_batches``' iterator). Returns ``(block,
    network_float32)``: a SymbolBlock with ``deploy_block``'s input and outputs (float32
    RGB pixels 0-255 (B, 3, S, S) in; ids (B,K,1), scores (B,K,1), boxes (B,K,4) in input
    pixels, -1 rows padding), and the network layers kept float32 (``float32_layers``)."""
    if calib_mode not in CALIB_MODES:
        raise UserError("calib_mode must be one of %s, not %r" % (CALIB_MODES, calib_mode))
    if quantized_dtype not in QUANTIZED_DTYPES:
        raise UserError(
            "quantized_dtype must be one of %s, not %r" % (QUANTIZED_DTYPES, quantized_dtype)
        )
    if not mx.runtime.Features().is_enabled("MKLDNN"):
        raise UserError(
            "this MXNet build has no oneDNN (MKLDNN): int8 quantization needs the CPU build "
            "of mxnet 1.9 (pip install mxnet)"
        )
    if device_of(net) != mx.cpu():
        raise UserError("int8 quantization runs on the CPU; load the model there")
    block = deploy_block(net, **predictor_kwargs)
    block.hybridize()
    excluded, network = float32_layers(block, keep_float)
    with warnings.catch_warnings():
        # quantize_net_v2 builds its SymbolBlock before the input's dtype is known.
        warnings.filterwarnings("ignore", message="Cannot decide type")
        qblock = quantization.quantize_net_v2(
            block,
            quantized_dtype=quantized_dtype,
            quantize_mode="full",
            exclude_layers=excluded,
            calib_data=calib,
            calib_mode=calib_mode,
            ctx=mx.cpu(),
        )
    return qblock, network


def export_quantized(
    net,
    prefix,
    records,
    data_shape=None,
    num_calib_batches=5,
    batch_size=16,
    calib_mode="naive",
    quantized_dtype="auto",
    keep_float=(),
    threads=2,
    verify=True,
    **predictor_kwargs,
):
    """Calibrate and quantize ``net`` (``quantize_detector``) on the first
    ``num_calib_batches`` batches of ``batch_size`` images of ``records`` (a ``Records`` of
    ``open_calibration_records``, or the path of a .rec), resized to ``data_shape`` (default:
    the preset's), and write ``PREFIX-symbol.json``, ``PREFIX-0000.params`` and
    ``PREFIX-meta.json`` (``export_detector``'s fields, plus ``precision`` 'int8' and
    ``quantization``: the calibration used and the network layers kept float32). Input
    ``data``: float32 RGB pixels 0-255 (B, 3, S, S), any B.

    With ``verify``, the files are run in a fresh process on ``CHECK_IMAGES`` calibration
    images and must give the calibrated model's detections before they move into place.
    Returns a dict: ``symbol``, ``params``, ``meta`` (paths), ``data_shape``,
    ``calib_images``, ``float32`` (network layers kept float32), ``detections`` (found by
    the check; None without ``verify``)."""
    if not isinstance(records, Records):
        records = open_calibration_records(records, net.classes)
    shape = data_shape or net.base_size
    out_dir = output_prefix(prefix)
    impl = ops.resolve(net.ops)
    calib, pixels = calibration_batches(records, shape, batch_size, num_calib_batches, threads)
    qblock, network = quantize_detector(
        net, calib, calib_mode, quantized_dtype, keep_float, **predictor_kwargs
    )
    probe = pixels[:CHECK_IMAGES]
    expected = [o.asnumpy() for o in qblock(probe)]
    meta = dict(
        data_shape=shape,
        input_dtype="float32",
        classes=list(net.classes),
        ops=impl,
        input="RGB pixels 0-255, (B, 3, %d, %d), float32" % (shape, shape),
        outputs="ids (B,K,1), scores (B,K,1), boxes (B,K,4) in input pixels; -1 rows are padding",
        predictor=predictor_kwargs,
        precision="int8",
        quantization=dict(
            backend="MXNet %s oneDNN, CPU only" % mx.__version__,
            calib_mode=calib_mode,
            quantized_dtype=quantized_dtype,
            calib_rec=records.source,
            calib_images=int(pixels.shape[0]),
            calib_batch_size=batch_size,
            float32="input normalization, decoding and NMS, and the network layers %s"
            % ", ".join(network),
        ),
    )
    check = None
    if verify:
        library = ops.LIBRARY_PATH if impl == "custom" else None
        check = lambda staged: check_quantized_export(  # noqa: E731
            staged, probe.asnumpy(), expected, library
        )
    detections = write_export(qblock, prefix, out_dir, meta, check)
    return dict(
        symbol=prefix + "-symbol.json",
        params=prefix + "-0000.params",
        meta=prefix + "-meta.json",
        data_shape=shape,
        calib_images=int(pixels.shape[0]),
        float32=network,
        detections=detections,
    )


def check_quantized_export(prefix, image, expected, library=None):
    """Run the files at ``prefix`` in a fresh process that imports only mxnet (the way a
    deployment loads them) on ``image`` (B, 3, S, S) float32 pixels, and compare with
    ``expected``, the calibrated block's ``(ids, scores, boxes)`` on it: the same shapes and
    detections (the same int8 kernels run). Returns the number of detections; raises
    CheckFailedError otherwise."""
    got = run_in_fresh_process(
        _SYMBOL_CHECK,
        image,
        "%s-symbol.json: reloading in a fresh process failed" % prefix,
        prefix=os.path.abspath(prefix),
        library=library,
    )
    shapes, want = [g.shape for g in got], [e.shape for e in expected]
    if shapes != want:
        raise CheckFailedError(
            "%s: the reloaded int8 graph gives outputs of shapes %s, not %s"
            % (prefix, shapes, want)
        )
    _, _, problems = compare_detections(expected, got, atol=1e-4)
    if problems:
        raise CheckFailedError(
            "%s: the reloaded int8 graph differs from the calibrated model: %s"
            % (prefix, problems[0])
        )
    return int((got[0] >= 0).sum())
