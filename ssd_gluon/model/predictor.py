"""Inference head: decode boxes and run the paper's per-class NMS (DetectionOutput)."""

from mxnet.gluon import HybridBlock

from .. import ops as _ops
from ..constants import POSTPROCESS
from ..utils.errors import UserError
from .box_coder import VARIANCES, decode


class SSDPredictor(HybridBlock):
    """Wraps an SSD network into a detector.

    Input: images (B, 3, H, W), normalized as for the network. Output:
    ``ids (B, K, 1)`` class index (0-based foreground), ``scores (B, K, 1)``,
    ``bboxes (B, K, 4)`` corner boxes in input pixels; K = ``post_nms``, rows sorted by score
    and padded with -1.

    As in the paper, every class whose softmax score exceeds ``score_thresh`` yields a
    candidate, so one anchor can produce detections of several classes; each class keeps its
    ``nms_topk`` best candidates, NMS at ``nms_thresh`` runs per class, and the ``post_nms``
    best survivors over all classes are returned.

    ``ops``: 'custom' runs all of this in one ``ssd_multibox_detection(per_class=True)``;
    'builtin' composes it from MXNet built-ins (softmax, topk, gather_nd, box_nms), for graphs
    that must run without the ops library; default: the network's choice. The defaults of
    the four thresholds are ``constants.POSTPROCESS`` (the paper's 0.45 / 400 / 200 / 0.01).
    """

    def __init__(
        self,
        net,
        nms_thresh=POSTPROCESS["nms_thresh"],
        nms_topk=POSTPROCESS["nms_topk"],
        post_nms=POSTPROCESS["post_nms"],
        score_thresh=POSTPROCESS["score_thresh"],
        ops=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if not 0 < nms_thresh <= 1:
            raise UserError("nms_thresh must be in (0, 1], got %r" % nms_thresh)
        self.nms_thresh, self.nms_topk = nms_thresh, nms_topk
        self.post_nms, self.score_thresh = post_nms, score_thresh
        self._impl = _ops.resolve(ops or getattr(net, "ops", "auto"))
        with self.name_scope():
            self.net = net

    def hybrid_forward(self, F, x):
        cls_preds, box_preds, anchors = self.net(x)
        if self._impl == "custom":
            rows = self._custom_rows(F, cls_preds, box_preds, anchors)
        else:
            rows = self._builtin_rows(F, cls_preds, box_preds, anchors)
        ids = rows.slice_axis(axis=-1, begin=0, end=1)
        out_scores = rows.slice_axis(axis=-1, begin=1, end=2)
        bboxes = rows.slice_axis(axis=-1, begin=2, end=6)
        # Scale to input pixels; suppressed rows (-1) stay -1.
        hw = F.cast(F.shape_array(x).slice_axis(axis=0, begin=2, end=4), "float32")
        whwh = F.tile(F.reverse(hw, axis=0), reps=2).reshape((1, 1, 4))
        bboxes = F.where(bboxes < 0, bboxes, F.broadcast_mul(bboxes, whwh))
        return ids, out_scores, bboxes

    def _custom_rows(self, F, cls_preds, box_preds, anchors):
        """(B, post_nms, 6) rows [class, score, box] from the library's per-class operator."""
        prob = F.transpose(F.softmax(cls_preds, axis=-1), (0, 2, 1))  # (B, C+1, N)
        return _ops.multibox_detection(
            F,
            prob,
            box_preds.reshape((0, -1)),
            anchors,
            per_class=True,
            keep_topk=self.post_nms,
            nms_topk=self.nms_topk,
            nms_threshold=self.nms_thresh,
            threshold=self.score_thresh,
            clip=True,
            variances=VARIANCES,
        )

    def _builtin_rows(self, F, cls_preds, box_preds, anchors):
        """The same rows composed from built-ins: per-class top-k, gather, box_nms."""
        boxes = F.clip(decode(F, box_preds, anchors), 0.0, 1.0)  # (B, N, 4)
        scores = F.softmax(cls_preds, axis=-1).slice_axis(axis=-1, begin=1, end=None)
        scores = F.transpose(scores, (0, 2, 1))  # (B, C, N)
        top_scores, top_idx = self._per_class_topk(F, scores)  # (B, C, K)
        top_boxes = self._gather_boxes(F, boxes, top_idx)  # (B, C, K, 4)
        class_ids = F.broadcast_like(
            F.contrib.arange_like(top_scores, axis=1).reshape((1, -1, 1)), top_scores
        )
        rows = F.concat(
            class_ids.expand_dims(-1), top_scores.expand_dims(-1), top_boxes, dim=-1
        ).reshape((0, -3, 6))  # (B, C*K, 6)
        rows = F.contrib.box_nms(
            rows,
            overlap_thresh=self.nms_thresh,
            valid_thresh=self.score_thresh,
            topk=-1,
            coord_start=2,
            score_index=1,
            id_index=0,
            force_suppress=False,
        )
        classes = getattr(self.net, "classes", None)
        if classes is None or len(classes) * self.nms_topk < self.post_nms:  # too few rows
            rows = self._pad(F, rows, axis=1, value=-1, size=self.post_nms)
        return rows.slice_axis(axis=1, begin=0, end=self.post_nms)

    def _per_class_topk(self, F, scores):
        """Top ``nms_topk`` scores per class of (B, C, N); pads with score -1 when N < k so
        the shape does not depend on N (padding rows are below any threshold)."""
        padded = self._pad(F, scores, axis=2, value=-1)
        values, idx = F.topk(padded, axis=2, k=self.nms_topk, ret_typ="both", dtype="float32")
        return values, idx

    def _gather_boxes(self, F, boxes, idx):
        """boxes (B, N, 4), anchor indices (B, C, K) into the padded range -> (B, C, K, 4)."""
        return F.gather_nd(self._pad(F, boxes, axis=1, value=0), self._nd_index(F, idx))

    def _pad(self, F, x, axis, value, size=None):
        """``x`` with ``size`` (default ``nms_topk``) entries equal to ``value`` appended along
        ``axis`` (no shape needed)."""
        pad = F.broadcast_axis(
            x.slice_axis(axis=axis, begin=0, end=1) * 0 + value,
            axis=axis,
            size=size or self.nms_topk,
        )
        return F.concat(x, pad, dim=axis)

    @staticmethod
    def _nd_index(F, idx):
        """gather_nd indices (2, B, C, K) for (batch, anchor) from anchor indices (B, C, K)."""
        batch = F.broadcast_like(F.contrib.arange_like(idx, axis=0).reshape((-1, 1, 1)), idx)
        return F.stack(batch, idx, axis=0)
