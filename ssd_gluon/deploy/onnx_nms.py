"""The end-to-end ONNX detector: the raw-heads graph of ``to_onnx`` with the post-processing
appended in standard ONNX operators, so one file goes from pixels to detections.

Input ``data``: float32 RGB pixels 0-255 (B, 3, S, S); outputs, as the MXNet export and
``SSDPredictor`` give them:

* ``ids`` (B, P, 1): 0-based foreground class, as float32;
* ``scores`` (B, P, 1): the class's softmax probability;
* ``boxes`` (B, P, 4): corners (xmin, ymin, xmax, ymax) in input pixels (0..S);

P = ``post_nms``; rows sorted by decreasing score, rows past the last detection are -1 in
all three outputs.

The appended graph is ``postprocess.decode_and_nms`` step by step:

1. the offsets are decoded onto the anchor table (a constant of the file) with the
   variances, and the boxes clipped to [0, 1];
2. each foreground class keeps its K = min(``nms_topk``, N) best anchors (``TopK``; the
   paper's top-k BEFORE NMS: ``NonMaxSuppression`` alone would only cap what survives it);
   candidates whose score is not above ``score_thresh`` are set to -1 here, so the
   threshold is strict whichever way a runtime compares its own ``score_threshold``;
3. ``NonMaxSuppression`` runs once with every (image, class) pair as its own "batch"
   entry (boxes (B*C, K, 4), scores (B*C, 1, K)), since each class has its own candidates;
   suppression when IoU > ``nms_thresh``;
4. the kept scores are scattered into a (B, C*K) tensor of -1 and ``TopK`` picks the P
   best of each image; class = position // K, the box is gathered from the candidates.

Ties break as in ``decode_and_nms`` (ONNX ``TopK`` and NMS take the lower index first):
equal scores go lower anchor first within a class, lower class first across classes.

Fixed in the file: S, the anchors, the variances and the four post-processing values (the
model's metadata lists them); dynamic: the batch size B. Opset 13 of the standard domain
only (the raw model's, ``to_onnx.ONNX_OPSET``; GatherND's batch_dims needs 12, the rest
11). Importing this module needs onnx and NumPy, never MXNet.
"""

import json

import numpy as np

from . import postprocess

DETECTION_OUTPUTS = ("ids", "scores", "boxes")

# Value of the rows (and of the dense score entries) that hold no detection.
_PAD = -1.0

_DOC = (
    "SSD detector (network + decoding + per-class NMS). Input data: float32 RGB 0-255 "
    "(batch, 3, S, S). Outputs: ids (batch, P, 1) 0-based class, scores (batch, P, 1), "
    "boxes (batch, P, 4) xmin, ymin, xmax, ymax in input pixels; rows sorted by score, "
    "-1 rows are padding. Parameters in the metadata."
)


def _tensor(values, dtype, name):
    """A TensorProto ``name`` holding ``values`` as ``dtype``."""
    from onnx import numpy_helper

    return numpy_helper.from_array(np.asarray(values, dtype), name)


class _Builder:
    """Collects the nodes and constants appended to a graph; names get ``prefix``."""

    def __init__(self, prefix):
        self.prefix = prefix
        self.nodes, self.constants = [], []
        self._count = 0

    def _name(self, hint):
        self._count += 1
        return "%s%s_%d" % (self.prefix, hint, self._count)

    def const(self, value, dtype, hint="const"):
        """An initializer holding ``value`` (any shape) as ``dtype``; returns its name."""
        name = self._name(hint)
        self.constants.append(_tensor(value, dtype, name))
        return name

    def op(self, op_type, inputs, hint=None, outputs=1, **attrs):
        """Append one node; returns its output name (or the list of them if ``outputs`` > 1)."""
        from onnx import helper

        hint = hint or op_type.lower()
        names = [self._name(hint) for _ in range(outputs)]
        self.nodes.append(
            helper.make_node(op_type, list(inputs), names, name=self._name(op_type), **attrs)
        )
        return names if outputs > 1 else names[0]


def _settings(raw_model, overrides):
    """The raw model's metadata (decoded) and its post-processing settings with ``overrides``."""
    meta = {p.key: json.loads(p.value) for p in raw_model.metadata_props}
    unknown = sorted(set(overrides) - set(meta["postprocess"]))
    if unknown:
        raise ValueError("not post-processing settings: %s" % ", ".join(unknown))
    post = postprocess.settings(**dict(meta["postprocess"], **overrides))
    for key in ("nms_topk", "post_nms"):
        if int(post[key]) < 1:
            raise ValueError("%s must be at least 1, got %r" % (key, post[key]))
    return meta, post


def _decode(g, offsets, anchors, variances):
    """Offsets (B, N, 4) + anchors (1, N, 4) corners -> boxes (B, N, 4) corners in [0, 1]:
    ``box_coder.decode_np``, operation for operation, then clipped."""
    two = g.const(2.0, np.float32, "two")
    halves = g.const([2, 2], np.int64, "split")
    off_xy, off_wh = g.op("Split", [offsets, halves], "offset", outputs=2, axis=2)
    lo, hi = g.op("Split", [anchors, halves], "anchor_corner", outputs=2, axis=2)
    size = g.op("Sub", [hi, lo], "anchor_size")  # (1, N, 2) aw, ah
    center = g.op("Div", [g.op("Add", [lo, hi]), two], "anchor_center")  # (1, N, 2)
    var_xy = g.const(variances[:2], np.float32, "variance_xy")
    var_wh = g.const(variances[2:], np.float32, "variance_wh")
    cxy = g.op("Add", [g.op("Mul", [g.op("Mul", [off_xy, var_xy]), size]), center], "center")
    half = g.op("Exp", [g.op("Mul", [off_wh, var_wh])])
    half = g.op("Div", [g.op("Mul", [half, size]), two], "half_size")
    corners = g.op("Concat", [g.op("Sub", [cxy, half]), g.op("Add", [cxy, half])], axis=2)
    zero, one = g.const(0.0, np.float32, "zero"), g.const(1.0, np.float32, "one")
    return g.op("Clip", [corners, zero, one], "boxes_normalized")


def _append_detection(g, meta, post):
    """Append the post-processing to the raw graph's tensors ``probs``, ``offsets`` and
    ``anchors``; returns the names of the three (B, P, 1/1/4) outputs."""
    num_cls, num_anchors, size = meta["num_classes"], meta["num_anchors"], meta["data_shape"]
    k = min(int(post["nms_topk"]), num_anchors)  # TopK needs k <= N
    keep = int(post["post_nms"])
    best = min(keep, num_cls * k)  # and k <= C*K for the final TopK; the rest is padding
    pad = g.const(_PAD, np.float32, "pad")
    thresh = g.const(post["score_thresh"], np.float32, "score_thresh")

    boxes = _decode(g, "offsets", "anchors", meta["variances"])  # (B, N, 4)
    # Foreground scores per class: (B, N, C+1) -> (B, C, N).
    fg = g.op(
        "Slice",
        [
            "probs",
            g.const([1], np.int64, "starts"),
            g.const([num_cls + 1], np.int64, "ends"),
            g.const([2], np.int64, "axes"),
        ],
        "foreground",
    )
    class_scores = g.op("Transpose", [fg], "class_scores", perm=[0, 2, 1])
    # The paper's per-class top-k BEFORE NMS, sorted (ties: lower anchor index first).
    top_scores, top_idx = g.op(
        "TopK", [class_scores, g.const([k], np.int64, "k")], "candidates", outputs=2, axis=2
    )  # (B, C, K) each
    passing = g.op("Greater", [top_scores, thresh], "passing")
    top_scores = g.op("Where", [passing, top_scores, pad], "candidate_scores")
    # Candidate boxes (B, C*K, 4): anchor indices (B, C*K, 1), gathered per image.
    idx = g.op("Reshape", [top_idx, g.const([0, -1, 1], np.int64, "shape")], "candidate_index")
    cand_boxes = g.op("GatherND", [boxes, idx], "candidate_boxes", batch_dims=1)

    # NMS with each (image, class) pair as one NMS batch entry of one class.
    flat_scores = g.op("Reshape", [top_scores, g.const([-1, k], np.int64, "shape")])  # (B*C, K)
    nms_boxes = g.op("Reshape", [cand_boxes, g.const([-1, k, 4], np.int64, "shape")])
    nms_scores = g.op("Unsqueeze", [flat_scores, g.const([1], np.int64, "axes")])
    selected = g.op(
        "NonMaxSuppression",
        [
            nms_boxes,
            nms_scores,
            g.const([k], np.int64, "max_output_boxes_per_class"),  # no cap after NMS
            g.const([post["nms_thresh"]], np.float32, "iou_threshold"),
            g.const([post["score_thresh"]], np.float32, "score_threshold"),
        ],
        "selected",
        center_point_box=0,  # corners; any diagonal pair, so (x1, y1, x2, y2) is fine
    )  # (M, 3): (image * C + class, 0, candidate)
    pairs = g.op("Gather", [selected, g.const([0, 2], np.int64, "columns")], "kept", axis=1)
    kept_scores = g.op("GatherND", [flat_scores, pairs], "kept_scores")  # (M,)
    empty = g.op(
        "ConstantOfShape",
        [g.op("Shape", [flat_scores])],
        "empty",
        value=_tensor([_PAD], np.float32, "pad_value"),
    )
    dense = g.op("ScatterND", [empty, pairs, kept_scores], "nms_scores")  # (B*C, K)
    dense = g.op("Reshape", [dense, g.const([-1, num_cls * k], np.int64, "shape")])

    # The best P over all classes (ties: lower class, then lower candidate first).
    out_scores, pos = g.op(
        "TopK", [dense, g.const([best], np.int64, "k")], "best", outputs=2, axis=1
    )  # (B, P') each
    if best < keep:  # fewer candidates than rows: pad (score -1, any valid position)
        pads = g.const([0, 0, 0, keep - best], np.int64, "pads")
        out_scores = g.op("Pad", [out_scores, pads, pad], "best_scores")
        pos = g.op("Pad", [pos, pads, g.const(0, np.int64, "zero_index")], "best_position")
    class_id = g.op("Div", [pos, g.const(k, np.int64, "k")], "class_index")  # integer division
    class_id = g.op("Cast", [class_id], "class_id", to=1)  # FLOAT
    last = g.const([2], np.int64, "axes")
    out_boxes = g.op("GatherND", [cand_boxes, g.op("Unsqueeze", [pos, last])], batch_dims=1)
    out_boxes = g.op("Mul", [out_boxes, g.const(float(size), np.float32, "input_size")])
    valid = g.op("Greater", [out_scores, thresh], "valid")  # (B, P); -1 rows are not
    ids = g.op("Unsqueeze", [g.op("Where", [valid, class_id, pad]), last], "ids")
    scores = g.op("Unsqueeze", [g.op("Where", [valid, out_scores, pad]), last], "scores")
    out_boxes = g.op("Where", [g.op("Unsqueeze", [valid, last]), out_boxes, pad], "boxes")
    return ids, scores, out_boxes


def detection_model(raw_model, **overrides):
    """The end-to-end model (onnx ModelProto) from the raw-heads model of
    ``to_onnx.write_onnx`` (not modified). The post-processing settings are the raw model's
    metadata (the export's), with ``overrides`` (keys of ``constants.POSTPROCESS``)."""
    import onnx
    from onnx import TensorProto, helper

    meta, post = _settings(raw_model, overrides)
    model = onnx.ModelProto()
    model.CopyFrom(raw_model)
    graph = model.graph
    g = _Builder("detect_")
    outputs = _append_detection(g, meta, post)
    # The appended graph's last nodes write the public names.
    for node in g.nodes:
        for i, name in enumerate(node.output):
            if name in outputs:
                node.output[i] = DETECTION_OUTPUTS[outputs.index(name)]
    graph.node.extend(g.nodes)
    graph.initializer.extend(g.constants)
    del graph.output[:]
    keep = int(post["post_nms"])
    for name, width in zip(DETECTION_OUTPUTS, (1, 1, 4)):
        graph.output.append(
            helper.make_tensor_value_info(name, TensorProto.FLOAT, ("batch", keep, width))
        )
    model.doc_string = _DOC
    del model.metadata_props[:]
    meta = dict(
        meta,
        postprocess=post,
        outputs="ids (batch, %d, 1), scores (batch, %d, 1), boxes (batch, %d, 4) in input "
        "pixels; rows sorted by score, -1 rows are padding" % (keep, keep, keep),
    )
    helper.set_model_props(model, {k: json.dumps(v) for k, v in meta.items()})
    onnx.checker.check_model(model, full_check=True)  # with shape inference
    return model


def write_detection_onnx(raw_path, path, **overrides):
    """Write ``path``: ``detection_model`` of the raw-heads file ``raw_path``."""
    import onnx

    onnx.save(detection_model(onnx.load(raw_path), **overrides), path)
    return path
