"""Box coding of SSD, written once per back end and kept side by side: the graph form
(``F`` = ``mx.nd`` or ``mx.sym``) used by the training target and the predictor, and the
NumPy form used by the MXNet-free deployment path (ONNX) and the tests. This module imports
neither MXNet nor anything that does.

Boxes are corners ``(xmin, ymin, xmax, ymax)``; anchors and decoded boxes are normalized to
[0, 1] of the input image. Offsets are the paper's ``((cx - acx) / aw, (cy - acy) / ah,
log(w / aw), log(h / ah))`` divided by ``VARIANCES``.
"""

import numpy as np

from ..constants import VARIANCES

__all__ = ["VARIANCES", "corner_to_center", "decode", "decode_np", "box_iou"]


def corner_to_center(F, boxes):
    """(..., 4) xmin, ymin, xmax, ymax -> four (..., 1) arrays cx, cy, w, h."""
    x1, y1, x2, y2 = F.split(boxes, num_outputs=4, axis=-1)
    return (x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1


def decode(F, box_preds, anchors, variances=VARIANCES):
    """Offsets (B, N, 4) + anchors (1, N, 4) corner -> boxes (B, N, 4) corner, same units."""
    acx, acy, aw, ah = corner_to_center(F, anchors)
    px, py, pw, ph = F.split(box_preds, num_outputs=4, axis=-1)
    cx = F.broadcast_add(F.broadcast_mul(px * variances[0], aw), acx)
    cy = F.broadcast_add(F.broadcast_mul(py * variances[1], ah), acy)
    hw = F.broadcast_mul(F.exp(pw * variances[2]), aw) / 2
    hh = F.broadcast_mul(F.exp(ph * variances[3]), ah) / 2
    return F.concat(cx - hw, cy - hh, cx + hw, cy + hh, dim=-1)


def decode_np(offsets, anchors, variances=VARIANCES, clip=True):
    """``decode`` in NumPy: offsets (..., N, 4) + anchors (..., N, 4) corner -> boxes
    (..., N, 4) corner, float32, clipped to [0, 1] unless ``clip=False``. The operations run
    in the graph's order, so results match MXNet's to the last bits as far as possible."""
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
    return (np.clip(boxes, 0, 1) if clip else boxes).astype(np.float32)


def box_iou(a, b):
    """IoU of every pair of corner boxes: a (K, 4), b (L, 4) -> (K, L), in the inputs' dtype
    arithmetic (integer pixel boxes give exact float64 ratios). Exclusive corners, no "+1"
    pixel convention (the VOC metric's is ``evaluation.voc_map.bbox_iou_voc``); 0 where the
    union is empty, so degenerate boxes never give NaN."""
    ax1, ay1, ax2, ay2 = (np.ascontiguousarray(c) for c in np.asarray(a).T)
    bx1, by1, bx2, by2 = (np.ascontiguousarray(c) for c in np.asarray(b).T)
    # (K, L) planes one coordinate at a time: much faster than (K, L, 2) broadcasts.
    iw = np.minimum(ax2[:, None], bx2[None, :]) - np.maximum(ax1[:, None], bx1[None, :])
    ih = np.minimum(ay2[:, None], by2[None, :]) - np.maximum(ay1[:, None], by1[None, :])
    inter = np.maximum(iw, 0) * np.maximum(ih, 0)
    union = ((ax2 - ax1) * (ay2 - ay1))[:, None] + ((bx2 - bx1) * (by2 - by1))[None, :] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0)
