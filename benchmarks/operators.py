"""Our operators against MXNet's contrib built-ins on the same inputs, timed alternately in
one process: prior, target and detection at SSD300 sizes."""

import mxnet as mx
import numpy as np

from ssd_gluon import ops
from ssd_gluon.model.box_coder import box_iou
from ssd_gluon.model.zoo import get_model

from common import time_pair


def ssd300_anchors():
    """(1, 8732, 4) anchors of SSD300 from its own anchor generators."""
    net = get_model("ssd_300_vgg16_atrous_voc", ops="builtin")
    net.initialize()
    return net(mx.nd.zeros((1, 3, 300, 300)))[2]


def random_objects(rng, batch, max_objects, num_classes=20):
    """(B, max_objects, 5) ground truths [class, box], 1..max_objects per image, -1 padded."""
    labels = -np.ones((batch, max_objects, 5), np.float32)
    for b in range(batch):
        k = rng.randint(1, max_objects + 1)
        xy = rng.uniform(0, 0.8, (k, 2))
        labels[b, :k, 0] = rng.randint(0, num_classes, k)
        labels[b, :k, 1:3] = xy
        labels[b, :k, 3:] = np.minimum(xy + rng.uniform(0.05, 0.6, (k, 2)), 1)
    return labels


def detector_like_scores(rng, anchors, labels, num_classes):
    """(B, C+1, N) class probabilities resembling a trained detector's: background about
    0.95 on average, a few percent of the foreground scores above 0.01, and anchors
    overlapping an object (IoU > 0.4) favouring its class."""
    a = anchors[0]
    batch = labels.shape[0]
    logits = rng.normal(scale=1.0, size=(batch, num_classes + 1, a.shape[0]))
    logits[:, 0] += 7.0
    for b in range(batch):
        for row in labels[b]:
            if row[0] < 0:
                continue
            iou = box_iou(a, row[None, 1:5])[:, 0]
            near = iou > 0.4
            logits[b, int(row[0]) + 1, near] += 12.0 * iou[near]
    return _softmax(logits, 1)


def _softmax(x, axis):
    e = np.exp(x - x.max(axis, keepdims=True))
    return e / e.sum(axis, keepdims=True)


def bench_ops(repeats=20, log=print):
    """Rows (case, ours ms, peer ms, peer, 'ms') for prior, target and detection."""
    ops.load()
    rng = np.random.RandomState(0)
    rows = []

    def record(name, ours, peer, peer_name):
        t_ours, t_peer = time_pair(ours, peer, repeats)
        rows.append((name, t_ours * 1e3, t_peer * 1e3, peer_name, "ms"))
        log(
            "%-52s ours %8.2f ms  %-34s %8.2f ms  ours/peer %.3f"
            % (name, t_ours * 1e3, peer_name, t_peer * 1e3, t_ours / t_peer)
        )

    # Prior: SSD300's six feature maps and anchor settings, one call each.
    net = get_model("ssd_300_vgg16_atrous_voc", ops="builtin")
    maps = [
        (mx.nd.zeros((1, 1, s, s)), g._attrs)
        for s, g in zip((38, 19, 10, 5, 3, 1), net.anchor_generators)
    ]
    record(
        "prior: SSD300, 6 feature maps (8732 anchors)",
        lambda: [mx.nd.ssd_multibox_prior(x, **a) for x, a in maps],
        lambda: [mx.nd.contrib.MultiBoxPrior(x, **a) for x, a in maps],
        "contrib.MultiBoxPrior",
    )

    anchors = ssd300_anchors()
    n = anchors.shape[1]
    labels = random_objects(rng, 32, 10)
    cls = mx.nd.array(rng.normal(size=(32, 21, n)))
    lab = mx.nd.array(labels)
    attrs = dict(overlap_threshold=0.5, negative_mining_ratio=3, negative_mining_thresh=0.5)
    record(
        "target: B=32, N=%d, <=10 GT, mining 3:1" % n,
        lambda: mx.nd.ssd_multibox_target(anchors, lab, cls, **attrs),
        lambda: mx.nd.contrib.MultiBoxTarget(anchors, lab, cls, **attrs),
        "contrib.MultiBoxTarget",
    )

    loc = mx.nd.array(rng.normal(scale=0.5, size=(8, n * 4)))
    inputs = {
        "detector-like scores": detector_like_scores(rng, anchors.asnumpy(), labels[:8], 20),
        "random scores (worst case)": _softmax(rng.normal(scale=3.0, size=(8, 21, n)), 1),
    }
    for what, prob in inputs.items():
        prob = mx.nd.array(prob)

        def builtin():
            return mx.nd.contrib.MultiBoxDetection(
                prob, loc, anchors, nms_topk=400, nms_threshold=0.45
            )

        record(
            "detection per-class, B=8, 21 cls, %s" % what,
            lambda: mx.nd.ssd_multibox_detection(
                prob, loc, anchors, per_class=True, nms_topk=400, keep_topk=200, nms_threshold=0.45
            ),
            builtin,
            "contrib.MultiBoxDetection(topk 400)",
        )
        record(
            "detection best-class, B=8, 21 cls, %s" % what,
            lambda: mx.nd.ssd_multibox_detection(
                prob, loc, anchors, nms_topk=400, nms_threshold=0.45
            ),
            builtin,
            "contrib.MultiBoxDetection(topk 400)",
        )
    return rows
