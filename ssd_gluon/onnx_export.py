"""ONNX export of the network without its post-processing, and that post-processing in NumPy.

MXNet's ONNX exporter (``mx.onnx``, mx2onnx) converts neither ``MultiBoxPrior`` nor the
decoding/NMS part (``box_nms`` only partly, our per-class operator not at all), so the ONNX
file holds what it can convert exactly:

* input ``data``: float32 RGB pixels 0-255, shape (B, 3, S, S), any batch size B; the
  normalization ``(pixel - mean) / std`` is inside the graph;
* output ``probs`` (B, N, C+1): softmax class probabilities, column 0 the background;
* output ``offsets`` (B, N, 4): encoded box offsets (dx, dy, dw, dh) before the variances;
* output ``anchors`` (1, N, 4): the default boxes, corner format normalized to [0, 1]. They
  depend only on S, so they are computed once at export time in MXNet and stored in the
  graph as a constant: one file is the whole network.

``decode_and_nms`` (NumPy only) turns these three outputs into the detections of
``SSDPredictor``: the paper's decoding and per-class NMS. This module imports MXNet and onnx
only inside the export functions, so a deployment with onnxruntime + NumPy can import
``decode_and_nms`` from it (or copy the function) without MXNet installed.
"""
import json
import os

import numpy as np

from .fresh import run_in_fresh_process

# The paper's "variances" (same values as ssd_gluon.boxes.VARIANCES, repeated here so that
# this module does not import MXNet).
VARIANCES = (0.1, 0.1, 0.2, 0.2)

# mx2onnx 1.9.1 translates operators with its opset 12/13 rules but stamps the model with the
# onnx package's newest opset (20 for onnx 1.15); we declare the opset the nodes were written
# for, which also lets older runtimes load the file.
ONNX_OPSET = 13
# The IR version of onnx 1.8, the release that introduced opset 13: the file then loads in
# runtimes older than the onnx package that wrote it (onnx 1.15 would stamp IR 9).
ONNX_IR_VERSION = 7

OUTPUT_NAMES = ("probs", "offsets", "anchors")

# Names of the constants added next to the network's parameters.
_MEAN, _STD, _ANCHORS = "onnx_pixel_mean", "onnx_pixel_std", "onnx_anchor_table"

_DOC = ("SSD network without post-processing. Input data: float32 RGB 0-255 (batch, 3, S, S). "
        "Outputs: probs (batch, N, C+1) softmax, column 0 background; offsets (batch, N, 4) "
        "encoded (variances in the metadata); anchors (1, N, 4) corner boxes in [0, 1]. "
        "Decode + per-class NMS: ssd_gluon.onnx_export.decode_and_nms.")
POSTPROCESS_DEFAULTS = dict(nms_thresh=0.45, nms_topk=400, post_nms=200, score_thresh=0.01)


# ----------------------------------------------------------------------------------------
# Post-processing (NumPy only)
# ----------------------------------------------------------------------------------------

def decode_boxes(offsets, anchors, variances=VARIANCES):
    """offsets (B, N, 4) + anchors (1, N, 4) corner -> boxes (B, N, 4) corner, clipped to
    [0, 1]. Float32, in the order of ``ssd_gluon.boxes.decode`` so that results match
    MXNet's to the last bits as far as possible."""
    offsets = np.asarray(offsets, np.float32)
    anchors = np.asarray(anchors, np.float32)
    aw = anchors[..., 2] - anchors[..., 0]
    ah = anchors[..., 3] - anchors[..., 1]
    acx = (anchors[..., 0] + anchors[..., 2]) / np.float32(2)
    acy = (anchors[..., 1] + anchors[..., 3]) / np.float32(2)
    v = [np.float32(x) for x in variances]
    cx = offsets[..., 0] * v[0] * aw + acx
    cy = offsets[..., 1] * v[1] * ah + acy
    hw = np.exp(offsets[..., 2] * v[2]) * aw / np.float32(2)
    hh = np.exp(offsets[..., 3] * v[3]) * ah / np.float32(2)
    boxes = np.stack([cx - hw, cy - hh, cx + hw, cy + hh], axis=-1)
    return np.clip(boxes, 0, 1).astype(np.float32)


def iou_matrix(boxes):
    """Pairwise IoU (K, K) of corner boxes (K, 4); 0 where the union is empty."""
    x1, y1, x2, y2 = (np.ascontiguousarray(c) for c in boxes.T)
    # (K, K) planes one coordinate at a time: much faster than (K, K, 2) broadcasts.
    iw = np.minimum(x2[:, None], x2[None, :]) - np.maximum(x1[:, None], x1[None, :])
    ih = np.minimum(y2[:, None], y2[None, :]) - np.maximum(y1[:, None], y1[None, :])
    inter = np.maximum(iw, 0) * np.maximum(ih, 0)
    area = (x2 - x1) * (y2 - y1)
    union = area[:, None] + area[None, :] - inter
    # Degenerate (zero-area) boxes after clipping must not produce NaN comparisons.
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0)


def nms(boxes, thresh):
    """Greedy NMS. boxes (K, 4) sorted by decreasing score -> indices kept (ascending).
    A box is dropped when its IoU with a kept, higher-scored box exceeds ``thresh``."""
    # One (K, K) matrix, then a cheap sweep: K <= nms_topk (400), so this stays small.
    overlaps = iou_matrix(boxes) > thresh
    keep = np.ones(len(boxes), bool)
    for i in range(len(boxes)):
        if keep[i]:
            keep[i + 1:] &= ~overlaps[i, i + 1:]
    return np.flatnonzero(keep)


def _detect_one(probs, boxes, nms_thresh, nms_topk, score_thresh):
    """One image: probs (N, C+1), boxes (N, 4) -> (class, score, box) arrays of every
    detection that survives per-class NMS, unsorted: (D,), (D,), (D, 4)."""
    # Each class keeps its nms_topk best anchors (one sort for all classes), then the score
    # threshold applies.
    top = np.argsort(-probs[:, 1:], axis=0, kind="stable")[:nms_topk]       # (k, C)
    ids, scores, kept_boxes = [], [], []
    for c in range(1, probs.shape[1]):
        order = top[:, c - 1]
        order = order[probs[order, c] > score_thresh]
        keep = order[nms(boxes[order], nms_thresh)]
        ids.append(np.full(len(keep), c - 1, np.float32))
        scores.append(probs[keep, c])
        kept_boxes.append(boxes[keep])
    return (np.concatenate(ids), np.concatenate(scores).astype(np.float32),
            np.concatenate(kept_boxes).reshape(-1, 4))


def decode_and_nms(probs, offsets, anchors, nms_thresh=0.45, nms_topk=400, post_nms=200,
                   score_thresh=0.01, image_size=(1.0, 1.0), variances=VARIANCES):
    """The detector's post-processing on the ONNX outputs, in NumPy.

    probs (B, N, C+1) softmax probabilities (column 0 background), offsets (B, N, 4),
    anchors (1, N, 4) corner format in [0, 1]. Boxes are decoded with the paper's
    ``variances`` and clipped to [0, 1]; for each foreground class the ``nms_topk`` best
    anchors with a score above ``score_thresh`` go through NMS at ``nms_thresh``; the
    ``post_nms`` best survivors over all classes are kept. One anchor may yield detections
    of several classes, as in the paper.

    Returns ``ids (B, K, 1)`` (0-based foreground class), ``scores (B, K, 1)`` and
    ``boxes (B, K, 4)`` corner boxes multiplied by ``image_size = (width, height)`` (the
    network input's size gives input pixels, the original image's size its pixels, the
    default normalized coordinates); K = ``post_nms``, rows sorted by decreasing score and
    padded with -1: the outputs of ``SSDPredictor`` and of the exported MXNet symbol.
    """
    probs = np.asarray(probs, np.float32)
    if probs.ndim != 3 or np.shape(offsets) != probs.shape[:2] + (4,):
        raise ValueError("expected probs (B, N, C+1) and offsets (B, N, 4), got %s and %s"
                         % (probs.shape, np.shape(offsets)))
    if np.shape(anchors) != (1, probs.shape[1], 4):
        raise ValueError("expected anchors (1, %d, 4), got %s" % (probs.shape[1],
                                                                  np.shape(anchors)))
    boxes = decode_boxes(offsets, anchors, variances)
    scale = np.array(tuple(image_size) * 2, np.float32)          # (w, h, w, h)
    batch = probs.shape[0]
    ids = np.full((batch, post_nms, 1), -1, np.float32)
    scores = np.full((batch, post_nms, 1), -1, np.float32)
    out_boxes = np.full((batch, post_nms, 4), -1, np.float32)
    for b in range(batch):
        cls, score, box = _detect_one(probs[b], boxes[b], nms_thresh, nms_topk, score_thresh)
        best = np.argsort(-score, kind="stable")[:post_nms]
        n = len(best)
        ids[b, :n, 0], scores[b, :n, 0] = cls[best], score[best]
        out_boxes[b, :n] = box[best] * scale
    return ids, scores, out_boxes


# ----------------------------------------------------------------------------------------
# Export (MXNet + onnx)
# ----------------------------------------------------------------------------------------

def anchor_table(net, data_shape):
    """The network's anchors (1, N, 4) for a (data_shape x data_shape) input, from MXNet."""
    import mxnet as mx
    ctx = next(iter(net.collect_params().values())).list_ctx()[0]
    _, _, anchors = net(mx.nd.zeros((1, 3, data_shape, data_shape), ctx=ctx))
    return anchors.asnumpy()


def network_symbol(net, data_shape):
    """MXNet symbol with input ``data`` (B, 3, S, S) RGB 0-255 and outputs ``probs``,
    ``offsets``, ``anchors`` (see the module docstring), plus its parameters as a dict of
    NDArrays. The anchor operators drop out of the graph: only constants reach ``anchors``."""
    import mxnet as mx
    from .data import MEAN_RGB, STD_RGB
    data = mx.sym.var("data")
    mean, std = mx.sym.var(_MEAN), mx.sym.var(_STD)
    x = mx.sym.broadcast_div(mx.sym.broadcast_sub(data, mean), std)
    cls_preds, box_preds, _ = net(x)      # the network's own anchors are left unused
    outputs = mx.sym.Group([
        mx.sym.softmax(cls_preds, axis=-1, name="probs"),
        mx.sym.identity(box_preds, name="offsets"),
        mx.sym.identity(mx.sym.var(_ANCHORS), name="anchors")])
    params = {p.name: p.data().as_in_context(mx.cpu())
              for p in net.collect_params().values()}
    params[_MEAN] = mx.nd.array(MEAN_RGB).reshape((1, 3, 1, 1))
    params[_STD] = mx.nd.array(STD_RGB).reshape((1, 3, 1, 1))
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
    shapes = {"data": ("batch", 3, data_shape, data_shape),
              "probs": ("batch", num_anchors, num_cls),
              "offsets": ("batch", num_anchors, 4), "anchors": (1, num_anchors, 4)}
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
    post = dict(POSTPROCESS_DEFAULTS)
    post.update({k: v for k, v in predictor_kwargs.items() if k in post})
    return dict(classes=list(net.classes), num_classes=len(net.classes),
                num_anchors=int(anchors.shape[1]), data_shape=data_shape,
                input="float32 RGB 0-255, NCHW, (batch, 3, %d, %d)" % (data_shape, data_shape),
                variances=list(VARIANCES), postprocess=post)


def write_onnx(net, path, data_shape, **predictor_kwargs):
    """Convert with ``mx.onnx.export_model`` and tidy the model; writes ``path`` directly
    (see ``export_onnx`` for the atomic, verified version)."""
    import mxnet as mx
    try:
        import onnx
    except ImportError:
        raise RuntimeError("ONNX export needs the onnx package (pip install onnx==1.15.0 "
                           "onnxruntime==1.20.1 numpy==1.23.5)") from None
    sym, params = network_symbol(net, data_shape)
    try:
        mx.onnx.export_model(sym, params, in_shapes=[(1, 3, data_shape, data_shape)],
                             in_types=[np.float32], onnx_file_path=path, dynamic=True,
                             dynamic_input_shapes=[(None, 3, data_shape, data_shape)])
    except Exception as err:   # mx2onnx raises assorted types for what it cannot convert
        raise RuntimeError("%s: mx.onnx could not convert the network: %s: %s"
                           % (path, type(err).__name__, err)) from None
    model = onnx.load(path)
    metadata = _metadata(net, data_shape, params[_ANCHORS], predictor_kwargs)
    onnx.save(_tidy_model(model, data_shape, metadata), path)
    return path


# Runs in a fresh interpreter where importing MXNet fails: the deployment path must need
# only onnxruntime, NumPy and this module.
_CHECK_SCRIPT = r"""
import json, sys
sys.modules["mxnet"] = None
args = json.loads(sys.argv[1])
sys.path.insert(0, args["package_root"])
import numpy as np, onnxruntime as ort
from ssd_gluon.onnx_export import decode_and_nms
sess = ort.InferenceSession(args["model"], providers=["CPUExecutionProvider"])
image = np.load(args["input"])
raw = dict(zip([o.name for o in sess.get_outputs()], sess.run(None, {"data": image})))
meta = {k: json.loads(v) for k, v in sess.get_modelmeta().custom_metadata_map.items()}
dets = decode_and_nms(raw["probs"], raw["offsets"], raw["anchors"],
                      image_size=image.shape[:1:-1], **meta["postprocess"])
np.savez(args["output"], raw["probs"], raw["offsets"], raw["anchors"], *dets)
"""


def _run_check(model_path, image):
    """Run ``_CHECK_SCRIPT`` on ``image``; returns the raw outputs and the detections."""
    package_root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    return run_in_fresh_process(_CHECK_SCRIPT, image, "%s: onnxruntime check in a fresh "
                                "process failed" % model_path, model=os.path.abspath(model_path),
                                package_root=package_root)


def _pair_rows(e, g, atol, box_atol):
    """Pair the valid rows of one image's detections ``e`` and ``g`` (each a tuple of ids
    (K,), scores (K,), boxes (K, 4)) by class, closest score within ``atol`` and box within
    ``box_atol``. Returns (number paired, unpaired rows of e, unpaired rows of g)."""
    free = [j for j in range(len(g[0])) if g[0][j] >= 0]
    lonely = []
    for i in np.flatnonzero(e[0] >= 0):
        near = [j for j in free if g[0][j] == e[0][i] and abs(g[1][j] - e[1][i]) <= atol
                and np.abs(g[2][j] - e[2][i]).max() <= box_atol]
        if not near:
            lonely.append(i)
            continue
        free.remove(min(near, key=lambda j: abs(g[1][j] - e[1][i])))
    paired = int((e[0] >= 0).sum()) - len(lonely)
    return paired, lonely, free


def _excuse(rows, sides, tied, nms_thresh, atol):
    """Which unpaired rows ``(side, cls, score, box)`` (sorted by decreasing score) are
    explained by numerical noise rather than by a real difference: a score ``tied(cls,
    score)`` (its order against another candidate, or against the score threshold, was
    decided by noise); a box that overlaps an excused, higher-scored box of its class by more
    than ``nms_thresh`` (the NMS cascade of such a swap); or a row below the other output's
    last score when that output is full (pushed out by an excused row above it). Returns
    the rows not excused."""
    excused, left = [], []
    for side, cls, score, box in rows:
        other = sides[1 - side]
        ok = (tied(cls, score)
              or any(c == cls and s >= score and iou_matrix(np.stack([b, box]))[0, 1]
                     > nms_thresh for _, c, s, b in excused)
              or ((other[0] >= 0).all() and score <= other[1].min() + atol))
        (excused if ok else left).append((side, cls, score, box))
    return left


def match_detections(expected, got, atol=1e-4, box_atol=None, tied=None, nms_thresh=0.45):
    """Compare two detector outputs ``(ids, scores, boxes)`` of shapes (B, K, 1/1/4),
    padded with -1. Rows are paired by class and closest score (an order swap of two
    near-equal scores is no difference), scores within ``atol``, boxes within ``box_atol``
    (default ``atol`` times the largest coordinate, at least 1). ``tied(image, cls, score)``
    says whether a score lies within numerical noise of another candidate's or of the score
    threshold; unpaired rows explained by such ties are excused (see ``_excuse``).
    Returns ``(paired, excused, problems)``, problems a list of messages."""
    # ids and scores (B, K, 1) -> (B, K); boxes stay (B, K, 4).
    e_all = [np.asarray(a) for a in expected]
    g_all = [np.asarray(a) for a in got]
    e_all[:2], g_all[:2] = [a[..., 0] for a in e_all[:2]], [a[..., 0] for a in g_all[:2]]
    if box_atol is None:
        box_atol = atol * max(1.0, float(np.abs(e_all[2]).max(initial=0)))
    paired = excused = 0
    problems = []
    for b in range(e_all[0].shape[0]):
        e, g = [a[b] for a in e_all], [a[b] for a in g_all]
        n, lonely_e, lonely_g = _pair_rows(e, g, atol, box_atol)
        rows = sorted([(0, e[0][i], e[1][i], e[2][i]) for i in lonely_e]
                      + [(1, g[0][j], g[1][j], g[2][j]) for j in lonely_g],
                      key=lambda r: -r[2])
        is_tied = (lambda c, s: tied(b, c, s)) if tied else (lambda c, s: False)
        left = _excuse(rows, (e, g), is_tied, nms_thresh, atol)
        paired, excused = paired + n, excused + len(rows) - len(left)
        if left:
            side, cls, score, box = left[0]
            box = np.round(np.asarray(box, float), 2).tolist()
            problems.append("image %d: %d detection(s) without a counterpart, e.g. class %d "
                            "score %.6f box %s only in the %s output"
                            % (b, len(left), cls, score, box, ("reference", "checked")[side]))
    return paired, excused, problems


def _tie_test(probs, noise, score_thresh):
    """``tied(image, cls, score)`` for ``match_detections``: whether ``score`` is within
    ``noise`` of the threshold or of the probabilities (B, N, C+1) of two or more anchors
    (then which of them NMS keeps, or whether it passes, depends on noise)."""
    def tied(b, cls, score):
        column = probs[b, :, int(cls) + 1]
        return (abs(score - score_thresh) <= noise
                or int((np.abs(column - score) <= noise).sum()) >= 2)
    return tied


def verify_onnx(net, model_path, data_shape, atol=1e-4, rtol=1e-4, batch=2,
                **predictor_kwargs):
    """Check ``model_path`` in a fresh process without MXNet (onnxruntime + NumPy
    ``decode_and_nms``) against the Gluon detector (``export.deploy_block``) and the
    network's raw outputs, on ``batch`` random images. Returns a dict with the number of
    detections compared and the largest raw differences; raises RuntimeError on mismatch."""
    import mxnet as mx
    from .export import ImageNormalizer, deploy_block
    rng = np.random.RandomState(0)
    image = rng.uniform(0, 255, size=(batch, 3, data_shape, data_shape)).astype(np.float32)
    x = mx.nd.array(image, ctx=next(iter(net.collect_params().values())).list_ctx()[0])
    expected = [o.asnumpy() for o in deploy_block(net, **predictor_kwargs)(x)]
    normalizer = ImageNormalizer(prefix="onnx_check_")
    normalizer.initialize(ctx=x.context)
    cls_preds, box_preds, anchors = net(normalizer(x))
    raw_expected = [mx.nd.softmax(cls_preds, axis=-1).asnumpy(), box_preds.asnumpy(),
                    anchors.asnumpy()]
    got = _run_check(model_path, image)
    diffs = {}
    for name, a, b in zip(OUTPUT_NAMES, raw_expected, got[:3]):
        if a.shape != b.shape:
            raise RuntimeError("%s: ONNX output %s has shape %s, MXNet %s"
                               % (model_path, name, b.shape, a.shape))
        diffs[name] = float(np.abs(a - b).max())
        # Float32 sums of large terms that cancel carry errors relative to the terms, not to
        # the result: the relative part of the tolerance scales with the output's magnitude.
        tol = atol + rtol * float(np.abs(a).max())
        if diffs[name] > tol:
            raise RuntimeError("%s: ONNX output %s differs from MXNet by %.3g (> %.3g)"
                               % (model_path, name, diffs[name], tol))
    # Two candidates whose MXNet scores differ by less than twice the measured noise may be
    # ordered either way by the two runtimes (untrained networks saturate at exactly 1.0).
    post = dict(POSTPROCESS_DEFAULTS)
    post.update({k: v for k, v in predictor_kwargs.items() if k in post})
    tied = _tie_test(raw_expected[0], 2 * diffs["probs"] + 1e-7, post["score_thresh"])
    matched, excused, problems = match_detections(expected, got[3:], atol=atol, tied=tied,
                                                  nms_thresh=post["nms_thresh"])
    if problems:
        raise RuntimeError("%s: onnxruntime + decode_and_nms differ from the Gluon detector: "
                           "%s%s" % (model_path, problems[0], " (and %d more image(s))"
                                     % (len(problems) - 1) if len(problems) > 1 else ""))
    return dict(detections=matched, excused=excused, images=batch,
                **{"max_diff_" + k: v for k, v in diffs.items()})


def export_onnx(net, path, data_shape, **predictor_kwargs):
    """Write ``path`` (.onnx) and verify it (``verify_onnx``) before it appears: the file is
    written under a temporary name and renamed only after the check passed, so a failure
    leaves nothing behind. Returns ``verify_onnx``'s dict."""
    from .files import atomic_save
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    report = {}

    def save(tmp):
        try:
            write_onnx(net, tmp, data_shape, **predictor_kwargs)
            report.update(verify_onnx(net, tmp, data_shape, **predictor_kwargs))
        except RuntimeError as err:       # name the file the user asked for
            raise RuntimeError(str(err).replace(tmp, path)) from None
    atomic_save(save, path)
    return report
