"""The SSD multibox loss (Liu et al., eq. 1)."""

from mxnet.gluon import HybridBlock


class SSDLoss(HybridBlock):
    """Softmax cross-entropy on selected anchors plus Smooth L1 on positives, divided by the
    number of positive anchors in the batch (at least 1).

    Inputs: ``cls_preds (B, N, C+1)``, ``box_preds (B, N, 4)`` and the targets of
    MultiBoxTargetGenerator: ``box_target (B, N, 4)``, ``box_mask (B, N, 4)``,
    ``cls_target (B, N)`` (-1 = ignored).
    Outputs three arrays of shape (1,): total, classification part, box part (already
    weighted by ``alpha``). Nothing is read back to the host.
    """

    def __init__(self, alpha=1.0, **kwargs):
        super().__init__(**kwargs)
        self._alpha = alpha

    def hybrid_forward(self, F, cls_preds, box_preds, box_target, box_mask, cls_target):
        selected = cls_target >= 0
        num_pos = F.maximum(F.sum(cls_target > 0).reshape((1,)), 1.0)
        log_prob = F.log_softmax(cls_preds, axis=-1)
        ce = -F.pick(log_prob, F.maximum(cls_target, 0), axis=-1) * selected
        box = F.smooth_l1((box_preds - box_target) * box_mask, scalar=1.0) * box_mask
        cls_loss = F.broadcast_div(F.sum(ce).reshape((1,)), num_pos)
        box_loss = F.broadcast_div(F.sum(box).reshape((1,)), num_pos) * self._alpha
        return cls_loss + box_loss, cls_loss, box_loss
