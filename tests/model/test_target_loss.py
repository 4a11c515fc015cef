"""Training targets and loss on hand-built cases, and the loss against a NumPy reference."""

import mxnet as mx
import numpy as np
import pytest
from mxnet import autograd

from ssd_gluon.constants import VARIANCES
from ssd_gluon.model.loss import SSDLoss
from ssd_gluon.model.target import MultiBoxTargetGenerator

# Far-away background anchors so hard negative mining (3 per positive) has candidates.
BACKGROUND = [[0.6 + 0.04 * i, 0.6, 0.62 + 0.04 * i, 0.62] for i in range(8)]
PAD = [-1] * 6


def targets(anchors, labels, num_classes=4):
    anchors = mx.nd.array([anchors + BACKGROUND])
    cls = mx.nd.zeros((len(labels), anchors.shape[1], num_classes + 1))
    gen = MultiBoxTargetGenerator(ops="builtin")
    return [o.asnumpy() for o in gen(anchors, mx.nd.array(labels), cls)]


def encode(anchor, gt):
    """The paper's center-offset encoding with variances (NumPy reference)."""
    ax, ay = (anchor[0] + anchor[2]) / 2, (anchor[1] + anchor[3]) / 2
    aw, ah = anchor[2] - anchor[0], anchor[3] - anchor[1]
    gx, gy = (gt[0] + gt[2]) / 2, (gt[1] + gt[3]) / 2
    gw, gh = gt[2] - gt[0], gt[3] - gt[1]
    return np.array(
        [
            (gx - ax) / aw / VARIANCES[0],
            (gy - ay) / ah / VARIANCES[1],
            np.log(gw / aw) / VARIANCES[2],
            np.log(gh / ah) / VARIANCES[3],
        ]
    )


def test_iou_exactly_at_threshold_is_not_positive():
    # gt [0,0,.5,.5]; anchor 1 covers half of it: IoU exactly 0.5 in float arithmetic.
    # The paper matches overlaps *higher* than 0.5, so it is neither positive nor a negative.
    box_t, box_m, cls_t = targets(
        [[0, 0, 0.5, 0.5], [0, 0, 0.5, 0.25], [0, 0, 0.5, 0.2499]], [[[2, 0, 0, 0.5, 0.5, 0], PAD]]
    )
    assert cls_t[0, 0] == 3  # best match: class 2 + 1 (0 is background)
    assert cls_t[0, 1] == -1  # IoU == 0.5: ignored
    assert cls_t[0, 2] == 0  # IoU just below: a mined negative
    assert box_m[0, 0].tolist() == [1, 1, 1, 1] and box_m[0, 1:].sum() == 0


def test_one_ground_truth_encoded_box():
    gt = [0.1, 0.2, 0.4, 0.45]
    anchor = [0.05, 0.15, 0.35, 0.5]
    box_t, box_m, cls_t = targets([anchor], [[[1] + gt + [0], PAD, PAD]])
    assert cls_t[0, 0] == 2 and (cls_t[0] > 0).sum() == 1
    assert (cls_t[0] == 0).sum() == 3  # negative ratio 3:1
    np.testing.assert_allclose(box_t[0, 0], encode(anchor, gt), rtol=1e-4, atol=1e-5)


def test_no_ground_truth_gives_no_positive_and_finite_zero_loss():
    box_t, box_m, cls_t = targets([[0, 0, 0.5, 0.5]], [[PAD, PAD]])
    assert (cls_t > 0).sum() == 0 and box_m.sum() == 0
    cls_preds = mx.nd.random.normal(shape=(1, 9, 5))
    total, cls_l, box_l = SSDLoss()(
        cls_preds,
        mx.nd.zeros((1, 9, 4)),
        mx.nd.array(box_t),
        mx.nd.array(box_m),
        mx.nd.array(cls_t),
    )
    assert np.isfinite(total.asscalar()) and total.asscalar() == 0


def reference_loss(cls_preds, box_preds, box_t, box_m, cls_t):
    logp = cls_preds - np.log(np.exp(cls_preds).sum(-1, keepdims=True))
    sel = cls_t >= 0
    ce = -np.take_along_axis(logp, np.maximum(cls_t, 0)[..., None].astype(int), -1)[..., 0]
    d = np.abs((box_preds - box_t) * box_m)
    sl1 = np.where(d < 1, 0.5 * d**2, d - 0.5)
    n = max(1, (cls_t > 0).sum())
    return (ce * sel).sum() / n, sl1.sum() / n


@pytest.mark.parametrize("seed", range(5))
def test_loss_matches_numpy_and_gradients_skip_ignored(seed):
    rng = np.random.RandomState(seed)
    B, N, C = 3, 50, 6
    cls_t = rng.choice([-1, 0, 0, 1, 2, 3, 4, 5], size=(B, N)).astype(np.float32)
    box_m = np.repeat((cls_t > 0)[..., None], 4, -1).astype(np.float32)
    box_t = rng.normal(size=(B, N, 4)).astype(np.float32)
    cls_preds = mx.nd.array(rng.normal(size=(B, N, C)) * 3)
    box_preds = mx.nd.array(rng.normal(size=(B, N, 4)) * 2)
    cls_preds.attach_grad()
    with autograd.record():
        total, cls_l, box_l = SSDLoss()(
            cls_preds, box_preds, mx.nd.array(box_t), mx.nd.array(box_m), mx.nd.array(cls_t)
        )
    total.backward()
    ref_cls, ref_box = reference_loss(cls_preds.asnumpy(), box_preds.asnumpy(), box_t, box_m, cls_t)
    np.testing.assert_allclose(cls_l.asscalar(), ref_cls, rtol=1e-5)
    np.testing.assert_allclose(box_l.asscalar(), ref_box, rtol=1e-5)
    np.testing.assert_allclose(total.asscalar(), ref_cls + ref_box, rtol=1e-5)
    grad = cls_preds.grad.asnumpy()
    assert np.all(grad[cls_t < 0] == 0) and np.abs(grad[cls_t >= 0]).sum() > 0


def test_targets_carry_no_gradient_into_predictions():
    anchors = mx.nd.array([[[0, 0, 0.5, 0.5]] + BACKGROUND])
    labels = mx.nd.array([[[0, 0, 0, 0.4, 0.5, 0]]])
    cls = mx.nd.random.normal(shape=(1, 9, 3))
    cls.attach_grad()
    with autograd.record():
        box_t, box_m, cls_t = MultiBoxTargetGenerator(ops="builtin")(anchors, labels, cls)
        out = (box_t.sum() + cls_t.sum()) * cls.sum()
    out.backward()
    # d(out)/d(cls) only through the explicit cls.sum() factor: the targets are constants.
    np.testing.assert_allclose(
        cls.grad.asnumpy(), (box_t.sum() + cls_t.sum()).asscalar(), rtol=1e-6
    )
