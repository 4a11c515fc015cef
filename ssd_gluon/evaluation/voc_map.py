"""PASCAL VOC detection mean average precision (mAP), in pure numpy.

:class:`VOCMApMetric` follows the update/get protocol of gluoncv's
``VOC07MApMetric`` / ``VOCMApMetric`` and reproduces their numbers.  The
conventions below are the ones the VOC devkit (and gluoncv) use:

* **IoU offset +1.**  Boxes are ``(xmin, ymin, xmax, ymax)`` in inclusive pixel
  coordinates: ``xmax`` and ``ymax`` are shifted by +1 before the IoU is
  computed, so a box's width is ``xmax - xmin + 1``.  Two boxes overlap only
  when the shifted intersection has a positive width and height.
* **Threshold is inclusive.**  A prediction matches a ground truth when
  ``IoU >= iou_thresh``.
* **Matching** (per image and class): predictions are visited by descending
  score.  Each one is paired with the ground truth of highest IoU among *all*
  ground truths of that class (first one on ties), used or not.  Below the
  threshold -> false positive.  Paired with a difficult ground truth ->
  ignored (neither TP nor FP).  Paired with a non-difficult ground truth ->
  true positive the first time, false positive (duplicate) afterwards.
  Difficult ground truths do not count as positives.
* **Equal scores** are ranked by a stable ascending sort that is then
  reversed (``argsort(kind='stable')[::-1]``), i.e. among equal scores the
  later one comes first.  This is what gluoncv's ``argsort()[::-1]`` does
  whenever numpy's default sort is stable for the input (up to 16 elements);
  for larger inputs with ties gluoncv's order is implementation-defined.
* **AP**: 11-point interpolation (VOC2007, thresholds ``np.arange(0, 1.1,
  0.1)``) or area under the monotone precision envelope (VOC2010+).
  The thresholds are numpy's, as in gluoncv and the Python ports of the devkit; the
  MATLAB devkit's ``0:0.1:1`` holds 0.6 and 0.7 where numpy holds 0.6000000000000001
  and 0.7000000000000001, which changes an AP only when a class's recall lands exactly
  on 0.6 or 0.7 (tests/evaluation/test_eval.py shows a case).
  Classes without any non-difficult ground truth get AP ``nan`` and are left
  out of the mean.

Box arithmetic is done in float64.
"""

from collections import defaultdict

import numpy as np

__all__ = [
    "VOCMApMetric",
    "bbox_iou_voc",
    "match_detections",
    "precision_recall",
    "voc07_ap",
    "voc_ap",
]

#: Recall thresholds of the VOC2007 11-point AP, bit-identical to gluoncv's.
VOC07_RECALL_THRESHOLDS = np.arange(0.0, 1.1, 0.1)


def _to_numpy(a):
    """Return ``a`` (mx.nd.NDArray, numpy array or nested list) as a numpy array."""
    if hasattr(a, "asnumpy"):
        return a.asnumpy()
    return np.asarray(a)


def _per_image(a):
    """Split a batch ``(B, ...)`` or a list of batches into a list of per-image arrays."""
    batches = a if isinstance(a, (list, tuple)) else [a]
    images = []
    for batch in batches:
        images.extend(_to_numpy(batch))
    return images


def descending_order(scores):
    """Indices sorting `scores` `(N,)` high to low; among equal scores the later index first."""
    return np.argsort(scores, kind="stable")[::-1]


def bbox_iou_voc(boxes_a, boxes_b):
    """IoU of every pair of VOC boxes, with the +1 pixel offset.

    Args:
        boxes_a: ``(N, 4)`` boxes ``(xmin, ymin, xmax, ymax)``, inclusive coordinates.
        boxes_b: ``(M, 4)`` boxes, same format.

    Returns:
        ``(N, M)`` float64 array of IoUs.
    """
    a = np.array(boxes_a[:, :4], dtype=np.float64)
    b = np.array(boxes_b[:, :4], dtype=np.float64)
    a[:, 2:] += 1  # inclusive -> exclusive corners: width = xmax - xmin + 1
    b[:, 2:] += 1
    top_left = np.maximum(a[:, None, :2], b[None, :, :2])
    bottom_right = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(bottom_right - top_left, 0, None), axis=2)
    area_a = np.prod(a[:, 2:] - a[:, :2], axis=1)
    area_b = np.prod(b[:, 2:] - b[:, :2], axis=1)
    return inter / (area_a[:, None] + area_b[None, :] - inter)


def match_detections(pred_boxes, gt_boxes, gt_difficult, iou_thresh):
    """Label the detections of one class in one image as TP / FP / ignored.

    Args:
        pred_boxes: ``(N, 4)`` predictions, already sorted by descending score.
        gt_boxes: ``(M, 4)`` ground truths of the same class.
        gt_difficult: ``(M,)`` bool, True for difficult ground truths.
        iou_thresh: a detection matches when ``IoU >= iou_thresh``.

    Returns:
        ``(N,)`` int8 array: 1 true positive, 0 false positive, -1 ignored.
    """
    n = pred_boxes.shape[0]
    if n == 0 or gt_boxes.shape[0] == 0:
        return np.zeros(n, dtype=np.int8)
    iou = bbox_iou_voc(pred_boxes, gt_boxes)
    best_gt = iou.argmax(axis=1)
    matched = iou[np.arange(n), best_gt] >= iou_thresh
    first_claim = np.zeros(n, dtype=bool)
    _, first_index = np.unique(np.where(matched, best_gt, -1), return_index=True)
    first_claim[first_index] = True
    result = np.zeros(n, dtype=np.int8)
    result[matched & first_claim] = 1
    result[matched & gt_difficult[best_gt]] = -1
    return result


def precision_recall(scores, is_tp, n_pos):
    """Cumulative precision and recall of one class over all images.

    Args:
        scores: ``(K,)`` scores of the counted (not ignored) detections.
        is_tp: ``(K,)`` bool, True for true positives.
        n_pos: number of non-difficult ground truths (> 0).

    Returns:
        ``(recall, precision)``, two ``(K,)`` float64 arrays in rank order.
    """
    hits = is_tp[descending_order(scores)]
    tp = np.cumsum(hits)
    fp = np.cumsum(~hits)
    return tp / n_pos, tp / (tp + fp)


def voc07_ap(recall, precision):
    """VOC2007 11-point AP: mean over t in {0, 0.1, ..., 1} of max precision at recall >= t.

    Args:
        recall: ``(K,)`` non-decreasing recall.
        precision: ``(K,)`` precision.

    Returns:
        AP as a float (0 when ``K == 0``).
    """
    # best precision at this rank or any later one (a sentinel 0 past the end)
    best_after = np.maximum.accumulate(np.append(precision, 0.0)[::-1])[::-1]
    first_rank = np.searchsorted(recall, VOC07_RECALL_THRESHOLDS, side="left")
    return float(best_after[first_rank].sum() / len(VOC07_RECALL_THRESHOLDS))


def voc_ap(recall, precision):
    """VOC2010+ AP: area under the monotone (upper envelope) precision-recall curve.

    Args:
        recall: ``(K,)`` non-decreasing recall.
        precision: ``(K,)`` precision.

    Returns:
        AP as a float (0 when ``K == 0``).
    """
    mrec = np.concatenate(([0.0], recall, [1.0]))
    mpre = np.concatenate(([0.0], precision, [0.0]))
    mpre = np.maximum.accumulate(mpre[::-1])[::-1]
    step = np.flatnonzero(mrec[1:] != mrec[:-1])
    return float(np.sum((mrec[step + 1] - mrec[step]) * mpre[step + 1]))


class VOCMApMetric:
    """Accumulating PASCAL VOC detection mAP (see the module docstring for conventions).

    Args:
        iou_thresh: minimum IoU (inclusive) for a detection to match a ground truth.
        class_names: names of classes ``0..C-1``; by default ``str(i)`` for every
            label seen so far.
        use_07_metric: 11-point VOC2007 AP if True, all-point VOC2010+ AP if False.

    Like gluoncv, with ``class_names`` given, labels beyond the names are not
    reported but still count in the mean.
    """

    def __init__(self, iou_thresh=0.5, class_names=None, use_07_metric=True):
        if class_names is not None:
            class_names = [str(name) for name in class_names]
        self.iou_thresh = iou_thresh
        self.class_names = class_names
        self.use_07_metric = use_07_metric
        self.name = "VOC07MeanAP" if use_07_metric else "VOCMeanAP"
        self.reset()

    def reset(self):
        """Forget every update."""
        self._n_pos = defaultdict(int)  # class -> number of non-difficult gts
        self._scores = defaultdict(list)  # class -> chunks of (k,) scores
        self._is_tp = defaultdict(list)  # class -> chunks of (k,) bool

    def update(
        self, pred_bboxes, pred_labels, pred_scores, gt_bboxes, gt_labels, gt_difficults=None
    ):
        """Add a batch (or a list of batches) of predictions and ground truths.

        Args:
            pred_bboxes: ``(B, N, 4)`` predicted boxes.
            pred_labels: ``(B, N)`` or ``(B, N, 1)`` class ids, < 0 for padding.
            pred_scores: ``(B, N)`` or ``(B, N, 1)`` confidences.
            gt_bboxes: ``(B, M, 4)`` ground-truth boxes.
            gt_labels: ``(B, M)`` or ``(B, M, 1)`` class ids, < 0 for padding.
            gt_difficults: ``(B, M)`` or ``(B, M, 1)`` nonzero for difficult, optional.

        Each argument is an mx.nd.NDArray, a numpy array, or a list of them
        (one per batch; N and M may differ between batches).
        """
        columns = [
            _per_image(x) for x in (pred_bboxes, pred_labels, pred_scores, gt_bboxes, gt_labels)
        ]
        n_images = len(columns[0])
        columns.append([None] * n_images if gt_difficults is None else _per_image(gt_difficults))
        if any(len(col) != n_images for col in columns):
            raise ValueError(
                "all inputs must describe the same number of images, got %s"
                % [len(col) for col in columns]
            )
        for image in zip(*columns):
            self._update_image(*image)

    def _update_image(
        self, pred_boxes, pred_labels, pred_scores, gt_boxes, gt_labels, gt_difficult
    ):
        """Accumulate one image: boxes ``(N, 4)``/``(M, 4)``, the rest ``N`` or ``M`` values."""
        pred_labels = pred_labels.reshape(-1)
        keep = pred_labels >= 0
        pred_boxes = pred_boxes.reshape(-1, 4)[keep]
        pred_scores = pred_scores.reshape(-1)[keep].astype(np.float64)
        pred_labels = pred_labels[keep].astype(int)

        gt_labels = gt_labels.reshape(-1)
        keep = gt_labels >= 0
        gt_boxes = gt_boxes.reshape(-1, 4)[keep]
        gt_labels = gt_labels[keep].astype(int)
        if gt_difficult is None:
            gt_difficult = np.zeros(len(gt_labels), dtype=bool)
        else:
            gt_difficult = gt_difficult.reshape(-1)[keep] != 0

        for label in np.unique(np.concatenate((pred_labels, gt_labels))):
            is_pred, is_gt = pred_labels == label, gt_labels == label
            order = descending_order(pred_scores[is_pred])
            scores = pred_scores[is_pred][order]
            difficult = gt_difficult[is_gt]
            result = match_detections(
                pred_boxes[is_pred][order], gt_boxes[is_gt], difficult, self.iou_thresh
            )
            counted = result >= 0
            self._n_pos[label] += int(np.count_nonzero(~difficult))
            self._scores[label].append(scores[counted])
            self._is_tp[label].append(result[counted] == 1)

    def _class_ap(self, label):
        """AP of one class, nan when it has no non-difficult ground truth."""
        n_pos = self._n_pos[label]
        if n_pos == 0:
            return float("nan")
        recall, precision = precision_recall(
            np.concatenate(self._scores[label]), np.concatenate(self._is_tp[label]), n_pos
        )
        return voc07_ap(recall, precision) if self.use_07_metric else voc_ap(recall, precision)

    def curves(self):
        """``{name: (recall (K,), precision (K,))}`` in rank order for every class with
        non-difficult ground truth (for precision/recall plots)."""
        names = self.get()[0][:-1]
        out = {}
        for label in sorted(self._n_pos):
            if self._n_pos[label] and label < len(names):
                out[names[label]] = precision_recall(
                    np.concatenate(self._scores[label]),
                    np.concatenate(self._is_tp[label]),
                    self._n_pos[label],
                )
        return out

    def _all_aps(self):
        """``(L,)`` APs of labels ``0..L-1``, L = largest label seen + 1 (nan for unseen)."""
        n_labels = max(self._n_pos) + 1 if self._n_pos else 0
        aps = np.full(n_labels, np.nan)
        for label in list(self._n_pos):
            aps[label] = self._class_ap(label)
        return aps

    def get(self):
        """Return ``(names, values)``: per-class names then 'mAP', per-class APs then the mean."""
        aps = self._all_aps()
        finite = aps[~np.isnan(aps)]
        mean_ap = float(finite.mean()) if finite.size else float("nan")
        names = (
            self.class_names if self.class_names is not None else [str(i) for i in range(len(aps))]
        )
        values = [float(aps[i]) if i < len(aps) else float("nan") for i in range(len(names))]
        return list(names) + ["mAP"], values + [mean_ap]

    def get_dict(self):
        """Return ``{'mAP': float, 'per_class': {name: ap}}``."""
        names, values = self.get()
        return {"mAP": values[-1], "per_class": dict(zip(names[:-1], values[:-1]))}
