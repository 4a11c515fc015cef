"""The detector's post-processing in NumPy, for deployments without MXNet (onnxruntime runs
the network exported by ``to_onnx``): the paper's decoding and per-class NMS, giving the
rows of ``SSDPredictor`` and of the exported MXNet symbol.

Importing this module needs NumPy only (it and what it imports never import MXNet), so
``onnxruntime`` + NumPy + this package are a complete deployment.
"""

import numpy as np

from ..constants import POSTPROCESS, VARIANCES
from ..model.box_coder import box_iou, decode_np


def settings(**overrides):
    """``constants.POSTPROCESS`` with the given overrides (keys it does not have are
    ignored, so a predictor's keyword arguments can be passed as they are)."""
    post = dict(POSTPROCESS)
    post.update({k: v for k, v in overrides.items() if k in post})
    return post


def nms(boxes, thresh):
    """Greedy NMS. boxes (K, 4) sorted by decreasing score -> indices kept (ascending).
    A box is dropped when its IoU with a kept, higher-scored box exceeds ``thresh``."""
    # One (K, K) matrix, then a cheap sweep: K <= nms_topk (400), so this stays small.
    overlaps = box_iou(boxes, boxes) > thresh
    keep = np.ones(len(boxes), bool)
    for i in range(len(boxes)):
        if keep[i]:
            keep[i + 1 :] &= ~overlaps[i, i + 1 :]
    return np.flatnonzero(keep)


def _detect_one(probs, boxes, nms_thresh, nms_topk, score_thresh):
    """One image: probs (N, C+1), boxes (N, 4) -> (class, score, box) arrays of every
    detection that survives per-class NMS, unsorted: (D,), (D,), (D, 4)."""
    # Each class keeps its nms_topk best anchors (one sort for all classes), then the score
    # threshold applies.
    top = np.argsort(-probs[:, 1:], axis=0, kind="stable")[:nms_topk]  # (k, C)
    ids, scores, kept_boxes = [], [], []
    for c in range(1, probs.shape[1]):
        order = top[:, c - 1]
        order = order[probs[order, c] > score_thresh]
        keep = order[nms(boxes[order], nms_thresh)]
        ids.append(np.full(len(keep), c - 1, np.float32))
        scores.append(probs[keep, c])
        kept_boxes.append(boxes[keep])
    return (
        np.concatenate(ids),
        np.concatenate(scores).astype(np.float32),
        np.concatenate(kept_boxes).reshape(-1, 4),
    )


def decode_and_nms(
    probs,
    offsets,
    anchors,
    nms_thresh=POSTPROCESS["nms_thresh"],
    nms_topk=POSTPROCESS["nms_topk"],
    post_nms=POSTPROCESS["post_nms"],
    score_thresh=POSTPROCESS["score_thresh"],
    image_size=(1.0, 1.0),
    variances=VARIANCES,
):
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
        raise ValueError(
            "expected probs (B, N, C+1) and offsets (B, N, 4), got %s and %s"
            % (probs.shape, np.shape(offsets))
        )
    if np.shape(anchors) != (1, probs.shape[1], 4):
        raise ValueError(
            "expected anchors (1, %d, 4), got %s" % (probs.shape[1], np.shape(anchors))
        )
    boxes = decode_np(offsets, anchors, variances)
    scale = np.array(tuple(image_size) * 2, np.float32)  # (w, h, w, h)
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
