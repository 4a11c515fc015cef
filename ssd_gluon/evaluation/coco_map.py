"""COCO detection AP through pycocotools: a thin adapter, not a reimplementation.

:class:`COCOMetric` takes the same ``update`` arrays as
:class:`~ssd_gluon.evaluation.voc_map.VOCMApMetric` (boxes ``(xmin, ymin, xmax, ymax)`` in
original image pixels, labels < 0 for padding rows), accumulates them, and on ``get_dict``
builds an in-memory COCO ground-truth set and result set and runs pycocotools' ``COCOeval``
(``iouType='bbox'``: IoU thresholds .50:.05:.95, 101 recall points, maxDets 1/10/100 per
image *and category*, as pycocotools does). The numbers are pycocotools' own. Conventions:

* **Boxes.** COCO's ``[x, y, w, h]`` with ``w = xmax - xmin`` and ``h = ymax - ymin`` (no
  +1 pixel, unlike VOC), computed in float64.
* **Ground-truth area** is the box area ``w * h`` in pixels. COCO's official annotations
  store the *mask* area, which is smaller for most objects: a box area moves some objects
  between the small / medium / large ranges (``AP_small`` ... ``AR_large``), but leaves
  ``AP``, ``AP50``, ``AP75`` and ``AR1/10/100`` unchanged (they use every area).
* **Crowd.** The 6th ``update`` array is COCO's ``iscrowd`` flag (what our COCO records
  store in the difficult/crowd column): a crowd ground truth is not counted as a miss, and
  detections on it are neither true nor false positives.
* **Category ids.** Our class index ``i`` becomes COCO category id ``category_ids[i]``;
  by default ``i + 1`` (COCO's ids start at 1; pass the 80-entry list of the original ids,
  1..90 with gaps, to write results that the official ground truth accepts).
* **Image ids** are the ``image_ids`` passed to ``update``, by default the running index
  ``0, 1, ...`` of the images in update order. An id may appear only once.
* **Classes without ground truth** (in every image) have no AP in pycocotools: they are
  left out of the mean and **left out of** ``per_class`` (no NaN, the dict stays valid
  JSON). A stat whose ground truth is empty altogether (e.g. ``AP_small`` with no small
  objects) is pycocotools' ``-1``.
"""

import contextlib
import copy
import io
import json

import numpy as np

from ..utils.files import atomic_save
from .voc_map import _per_image

__all__ = ["COCOMetric", "STAT_NAMES"]

#: Names of ``COCOeval.stats`` (bbox), in order.
STAT_NAMES = (
    "AP",
    "AP50",
    "AP75",
    "AP_small",
    "AP_medium",
    "AP_large",
    "AR1",
    "AR10",
    "AR100",
    "AR_small",
    "AR_medium",
    "AR_large",
)


def _xyxy_to_xywh(boxes):
    """``(N, 4)`` ``(xmin, ymin, xmax, ymax)`` -> ``(N, 4)`` float64 ``(x, y, w, h)``."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    return np.concatenate([boxes[:, :2], boxes[:, 2:] - boxes[:, :2]], axis=1)


class COCOMetric:
    """Accumulating COCO bbox AP (see the module docstring for conventions).

    Args:
        class_names: names of classes ``0..C-1`` (keys of ``per_class``); labels beyond
            them, or every label without names, are named ``str(label)``.
        category_ids: COCO category id of each class index, ``(C,)`` distinct ints;
            default ``index + 1``.

    After ``get_dict``, ``summary`` holds pycocotools' ``summarize()`` printout (text) and
    ``coco_eval`` the ``COCOeval`` object (``coco_eval.eval['precision']`` etc.).
    """

    def __init__(self, class_names=None, category_ids=None):
        self.class_names = None if class_names is None else [str(n) for n in class_names]
        self.category_ids = None if category_ids is None else [int(i) for i in category_ids]
        if self.category_ids is not None and len(set(self.category_ids)) != len(self.category_ids):
            raise ValueError("category_ids must be distinct, got %s" % self.category_ids)
        self.name = "COCOMeanAP"
        self.reset()

    def reset(self):
        """Forget every update."""
        self._image_ids = []  # in update order
        self._dets = []  # per image (k, 6) float64 [label, score, xmin, ymin, xmax, ymax]
        self._gts = []  # per image (m, 6) float64 [label, xmin, ymin, xmax, ymax, crowd]
        self.summary = ""
        self.coco_eval = None

    def update(
        self,
        pred_bboxes,
        pred_labels,
        pred_scores,
        gt_bboxes,
        gt_labels,
        gt_crowds=None,
        image_ids=None,
    ):
        """Add a batch (or a list of batches) of predictions and ground truths.

        Args:
            pred_bboxes: ``(B, N, 4)`` predicted boxes ``(xmin, ymin, xmax, ymax)``, pixels.
            pred_labels: ``(B, N)`` or ``(B, N, 1)`` class ids, < 0 for padding.
            pred_scores: ``(B, N)`` or ``(B, N, 1)`` confidences.
            gt_bboxes: ``(B, M, 4)`` ground-truth boxes, same format.
            gt_labels: ``(B, M)`` or ``(B, M, 1)`` class ids, < 0 for padding.
            gt_crowds: ``(B, M)`` or ``(B, M, 1)`` nonzero for ``iscrowd``, optional.
            image_ids: ``(B,)`` COCO image ids of these images, optional (default: the
                running index of the image over all updates).

        Each array is an mx.nd.NDArray, a numpy array, or a list of them (one per batch;
        N and M may differ between batches). Padding rows are dropped here.
        """
        columns = [
            _per_image(x) for x in (pred_bboxes, pred_labels, pred_scores, gt_bboxes, gt_labels)
        ]
        n_images = len(columns[0])
        columns.append([None] * n_images if gt_crowds is None else _per_image(gt_crowds))
        if any(len(col) != n_images for col in columns):
            raise ValueError(
                "all inputs must describe the same number of images, got %s"
                % [len(col) for col in columns]
            )
        if image_ids is None:
            start = len(self._image_ids)
            image_ids = range(start, start + n_images)
        image_ids = [int(i) for i in np.asarray(image_ids).reshape(-1)]
        if len(image_ids) != n_images:
            raise ValueError("image_ids: %d ids for %d images" % (len(image_ids), n_images))
        seen = set(self._image_ids)
        for image_id in image_ids:
            if image_id in seen:
                raise ValueError("image id %d given twice" % image_id)
            seen.add(image_id)
        for image_id, image in zip(image_ids, zip(*columns)):
            self._update_image(image_id, *image)

    def _update_image(
        self, image_id, pred_boxes, pred_labels, pred_scores, gt_boxes, gt_labels, crowd
    ):
        """Keep one image's non-padding rows: boxes ``(N, 4)``/``(M, 4)``, the rest N or M."""
        labels = pred_labels.reshape(-1)
        keep = labels >= 0
        dets = np.concatenate(
            [
                labels[keep, None],
                pred_scores.reshape(-1)[keep, None],
                pred_boxes.reshape(-1, 4)[keep],
            ],
            axis=1,
        ).astype(np.float64)
        if not np.isfinite(dets).all():  # would become null in the results JSON
            raise ValueError("image %d: non-finite detection score or box" % image_id)
        labels = gt_labels.reshape(-1)
        keep = labels >= 0
        crowd = np.zeros(len(labels)) if crowd is None else (crowd.reshape(-1) != 0)
        gts = np.concatenate(
            [labels[keep, None], gt_boxes.reshape(-1, 4)[keep], crowd[keep, None]], axis=1
        ).astype(np.float64)
        self._image_ids.append(image_id)
        self._dets.append(dets)
        self._gts.append(gts)

    # -- COCO structures ------------------------------------------------------------------

    def _labels(self):
        """Sorted class indices: the named ones and every label seen."""
        labels = set(range(len(self.class_names))) if self.class_names else set()
        for rows in self._dets + self._gts:
            labels.update(int(label) for label in rows[:, 0])
        return sorted(labels)

    def _category_map(self, category_ids=None):
        """``{class index: COCO category id}`` for every label, from ``category_ids`` (or
        the metric's, or ``index + 1``)."""
        ids = self.category_ids if category_ids is None else [int(i) for i in category_ids]
        labels = self._labels()
        if ids is None:
            return {label: label + 1 for label in labels}
        missing = [label for label in labels if label >= len(ids)]
        if missing:
            raise ValueError(
                "category_ids has %d entries, labels %s have no category id" % (len(ids), missing)
            )
        return {label: ids[label] for label in labels}

    def _class_name(self, label):
        if self.class_names is not None and label < len(self.class_names):
            return self.class_names[label]
        return str(label)

    def ground_truth(self):
        """The accumulated ground truth as a COCO dataset dict (``info``, ``images``,
        ``categories``, ``annotations`` with ids from 1, box ``area``, ``iscrowd``)."""
        cat = self._category_map()
        annotations = []
        for image_id, gts in zip(self._image_ids, self._gts):
            for row, xywh in zip(gts, _xyxy_to_xywh(gts[:, 1:5])):
                annotations.append(
                    {
                        # ids from 1: COCOeval stores the matched gt id and reads 0 as unmatched
                        "id": len(annotations) + 1,
                        "image_id": image_id,
                        "category_id": cat[int(row[0])],
                        "bbox": [float(v) for v in xywh],
                        "area": float(xywh[2] * xywh[3]),
                        "iscrowd": int(row[5]),
                    }
                )
        return {
            "info": {},  # loadRes copies it
            "images": [{"id": image_id} for image_id in self._image_ids],
            "categories": [
                {"id": cat[label], "name": self._class_name(label)} for label in sorted(cat)
            ],
            "annotations": annotations,
        }

    def results(self, category_ids=None):
        """Detections in COCO's results format: a list of ``{"image_id", "category_id",
        "bbox": [x, y, w, h], "score"}``, image by image in update order, rows in input order.
        ``category_ids`` overrides the metric's mapping (class index -> category id)."""
        cat = self._category_map(category_ids)
        out = []
        for image_id, dets in zip(self._image_ids, self._dets):
            for row, xywh in zip(dets, _xyxy_to_xywh(dets[:, 2:6])):
                out.append(
                    {
                        "image_id": image_id,
                        "category_id": cat[int(row[0])],
                        "bbox": [float(v) for v in xywh],
                        "score": float(row[1]),
                    }
                )
        return out

    def results_json(self, path, category_ids=None):
        """Write :meth:`results` to ``path`` (compact JSON, atomically) for the official
        evaluation server or ``COCO.loadRes``; returns the list written."""
        records = self.results(category_ids)

        def save(tmp):
            with open(tmp, "w") as f:
                json.dump(records, f, allow_nan=False)

        atomic_save(save, path)
        return records

    # -- evaluation ----------------------------------------------------------------------

    def _evaluate(self):
        """Run COCOeval over everything accumulated; returns it (pycocotools' chatter and
        the summary are captured into ``self.summary``)."""
        from pycocotools.coco import COCO
        from pycocotools.cocoeval import COCOeval

        log = io.StringIO()
        with contextlib.redirect_stdout(log):
            gt = COCO()
            gt.dataset = self.ground_truth()
            gt.createIndex()
            results = self.results()
            if results:
                dt = gt.loadRes(results)
            else:  # loadRes reads anns[0]: an empty result set is built by hand
                dt = COCO()
                dt.dataset = dict(copy.deepcopy(gt.dataset), annotations=[])
                dt.createIndex()
            coco_eval = COCOeval(gt, dt, "bbox")
            coco_eval.evaluate()
            coco_eval.accumulate()
        summary = io.StringIO()
        with contextlib.redirect_stdout(summary):
            coco_eval.summarize()
        self.summary = summary.getvalue()
        self.coco_eval = coco_eval
        return coco_eval

    def _per_class(self, coco_eval):
        """``{name: AP@[.50:.95]}`` from ``eval['precision']`` (T, R, K, A, M): mean of the
        entries > -1 at area 'all', maxDets 100, as ``summarize`` averages; classes
        without ground truth (all -1) are left out."""
        label_of = {cat_id: label for label, cat_id in self._category_map().items()}
        params = coco_eval.params
        area = params.areaRngLbl.index("all")
        max_det = params.maxDets.index(100)
        precision = coco_eval.eval["precision"]
        out = {}
        for k, cat_id in enumerate(params.catIds):
            p = precision[:, :, k, area, max_det]
            p = p[p > -1]
            if p.size:
                out[self._class_name(label_of[cat_id])] = float(np.mean(p))
        return out

    def get_dict(self):
        """Return ``{'AP', 'AP50', 'AP75', 'AP_small', 'AP_medium', 'AP_large', 'AR1',
        'AR10', 'AR100', 'AR_small', 'AR_medium', 'AR_large'`` (``COCOeval.stats``),
        ``'mAP'`` (= AP), ``'per_class': {name: AP}}``; a stat without ground truth is -1."""
        coco_eval = self._evaluate()
        out = {name: float(v) for name, v in zip(STAT_NAMES, coco_eval.stats)}
        out["mAP"] = out["AP"]
        out["per_class"] = self._per_class(coco_eval)
        return out

    def get(self):
        """Return ``(names, values)``: per-class names then 'mAP', per-class APs then AP
        (the shape of ``VOCMApMetric.get``; only classes with ground truth)."""
        result = self.get_dict()
        names = list(result["per_class"])
        return names + ["mAP"], [result["per_class"][n] for n in names] + [result["mAP"]]
