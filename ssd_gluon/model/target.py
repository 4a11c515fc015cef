"""Training targets on the device: anchor matching, box encoding, hard negative mining."""

from mxnet.gluon import HybridBlock

from .. import ops as _ops
from .box_coder import VARIANCES


class MultiBoxTargetGenerator(HybridBlock):
    """MultiBoxTarget as a block.

    Inputs: ``anchors (1, N, 4)`` corner normalized, ``labels (B, M, >=5)`` rows
    ``[class, xmin, ymin, xmax, ymax, ...]`` normalized, padded with class -1, and
    ``cls_preds (B, N, C+1)`` logits (used only to rank negatives; no gradient flows).

    Outputs: ``box_target (B, N, 4)`` encoded offsets, ``box_mask (B, N, 4)`` 1 on positives,
    ``cls_target (B, N)``: 0 background, k+1 for class k, -1 for anchors not selected by hard
    negative mining (ignored by the loss).
    """

    def __init__(
        self,
        overlap_thresh=0.5,
        negative_ratio=3.0,
        negative_mining_thresh=0.5,
        variances=VARIANCES,
        ops="auto",
        **kwargs,
    ):
        super().__init__(**kwargs)
        self._impl = _ops.resolve(ops)
        self._attrs = dict(
            overlap_threshold=overlap_thresh,
            ignore_label=-1,
            negative_mining_ratio=negative_ratio,
            negative_mining_thresh=negative_mining_thresh,
            minimum_negative_samples=0,
            variances=tuple(variances),
        )

    def hybrid_forward(self, F, anchors, labels, cls_preds):
        labels = labels.slice_axis(axis=-1, begin=0, end=5)
        scores = F.transpose(F.BlockGrad(cls_preds), (0, 2, 1))  # (B, C+1, N)
        box_t, box_m, cls_t = _ops.multibox_target(
            F, self._impl, F.BlockGrad(anchors), labels, scores, **self._attrs
        )
        return (
            F.BlockGrad(box_t.reshape((0, -1, 4))),
            F.BlockGrad(box_m.reshape((0, -1, 4))),
            F.BlockGrad(cls_t),
        )
