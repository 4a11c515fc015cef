"""NumPy transcription of the paper's DetectionOutput, the reference for the per-class
predictor and the ssd_multibox_detection(per_class=True) operator."""
import numpy as np

VARIANCES = (0.1, 0.1, 0.2, 0.2)


def np_iou(a, b):
    """IoU of box a (4,) with boxes b (K, 4)."""
    iw = np.maximum(0, np.minimum(a[2], b[:, 2]) - np.maximum(a[0], b[:, 0]))
    ih = np.maximum(0, np.minimum(a[3], b[:, 3]) - np.maximum(a[1], b[:, 1]))
    inter = iw * ih
    area = lambda r: (r[..., 2] - r[..., 0]) * (r[..., 3] - r[..., 1])
    return inter / (area(a) + area(b) - inter)


def np_decode(box, anchors, clip=True):
    """box (N, 4) offsets, anchors (N, 4) corners -> (N, 4) corners."""
    acx, acy = (anchors[:, 0] + anchors[:, 2]) / 2, (anchors[:, 1] + anchors[:, 3]) / 2
    aw, ah = anchors[:, 2] - anchors[:, 0], anchors[:, 3] - anchors[:, 1]
    cx, cy = acx + box[:, 0] * VARIANCES[0] * aw, acy + box[:, 1] * VARIANCES[1] * ah
    w, h = aw * np.exp(box[:, 2] * VARIANCES[2]), ah * np.exp(box[:, 3] * VARIANCES[3])
    out = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], 1)
    return np.clip(out, 0, 1) if clip else out


def detection_output(prob, box, anchors, nms_thresh, topk, keep, thresh):
    """prob (B, N, C+1) softmax with background 0, box (B, N, 4), anchors (1, N, 4).
    Per image: list of (class, score, box) sorted by score, at most ``keep``."""
    out = []
    for b in range(prob.shape[0]):
        boxes = np_decode(box[b], anchors[0])
        dets = []
        for c in range(1, prob.shape[2]):
            order = np.argsort(-prob[b, :, c], kind="stable")[:topk]
            order = order[prob[b, order, c] > thresh]
            kept = []
            for i in order:
                if not kept or np.all(np_iou(boxes[i], boxes[kept]) <= nms_thresh):
                    kept.append(i)
            dets += [(c - 1, prob[b, i, c], boxes[i]) for i in kept]
        dets.sort(key=lambda d: -d[1])
        out.append(dets[:keep])
    return out


def softmax(x, axis=-1):
    e = np.exp(x - x.max(axis, keepdims=True))
    return e / e.sum(axis, keepdims=True)
