"""NumPy transcription of the paper's DetectionOutput, the reference for the per-class
predictor, the ssd_multibox_detection(per_class=True) operator and the ONNX path's
decode_and_nms. Its NMS is a plain loop over the candidates, independent of the three
implementations it checks; the box formulas (decoding, IoU) are the package's NumPy ones."""

import numpy as np

from ssd_gluon.model.box_coder import box_iou, decode_np


def detection_output(prob, box, anchors, nms_thresh, topk, keep, thresh):
    """prob (B, N, C+1) softmax with background 0, box (B, N, 4), anchors (1, N, 4).
    Per image: list of (class, score, box) sorted by score, at most ``keep``."""
    out = []
    for b in range(prob.shape[0]):
        boxes = decode_np(box[b], anchors[0])
        dets = []
        for c in range(1, prob.shape[2]):
            order = np.argsort(-prob[b, :, c], kind="stable")[:topk]
            order = order[prob[b, order, c] > thresh]
            kept = []
            for i in order:
                if not kept or np.all(box_iou(boxes[i][None], boxes[kept])[0] <= nms_thresh):
                    kept.append(i)
            dets += [(c - 1, prob[b, i, c], boxes[i]) for i in kept]
        dets.sort(key=lambda d: -d[1])
        out.append(dets[:keep])
    return out


def softmax(x, axis=-1):
    e = np.exp(x - x.max(axis, keepdims=True))
    return e / e.sum(axis, keepdims=True)
