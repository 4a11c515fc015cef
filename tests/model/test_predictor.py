"""SSDPredictor against a NumPy transcription of the paper's DetectionOutput."""

import mxnet as mx
import numpy as np
import pytest
from mxnet.gluon import HybridBlock

from ssd_gluon import SSDPredictor

from references.detection_reference import detection_output, softmax

IMPLS = ["builtin", "custom"]


class FixedOutputs(HybridBlock):
    """Stands in for the network: returns given (cls_preds, box_preds, anchors)."""

    def __init__(self, cls, box, anchors):
        super().__init__()
        self._outs = [mx.nd.array(a) for a in (cls, box, anchors)]

    def forward(self, x):
        return self._outs


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("seed", range(6))
def test_matches_numpy_detection_output(seed, impl):
    rng = np.random.RandomState(seed)
    B, N, C = 2, 60, 4
    xy = rng.uniform(0, 0.8, size=(N, 2))
    anchors = np.concatenate([xy, xy + rng.uniform(0.05, 0.3, size=(N, 2))], 1)[None]
    cls = rng.normal(scale=2, size=(B, N, C + 1))
    box = rng.normal(scale=0.5, size=(B, N, 4))
    # the third setting keeps fewer candidates (C x topk = 20) than rows asked for (30)
    topk, keep, thresh, nms = [(100, 200, 0.01, 0.5), (20, 30, 0.05, 0.45), (5, 30, 0.05, 0.45)][
        seed % 3
    ]
    pred = SSDPredictor(
        FixedOutputs(cls, box, anchors),
        nms_thresh=nms,
        nms_topk=topk,
        post_nms=keep,
        score_thresh=thresh,
        ops=impl,
    )
    size = 200
    ids, scores, bboxes = [o.asnumpy() for o in pred(mx.nd.zeros((B, 3, size, size)))]
    assert (
        ids.shape == (B, keep, 1) and scores.shape == (B, keep, 1) and bboxes.shape == (B, keep, 4)
    )
    for b, dets in enumerate(detection_output(softmax(cls), box, anchors, nms, topk, keep, thresh)):
        n = len(dets)
        np.testing.assert_array_equal(ids[b, :n, 0], [d[0] for d in dets])
        np.testing.assert_allclose(scores[b, :n, 0], [d[1] for d in dets], rtol=1e-5)
        np.testing.assert_allclose(
            bboxes[b, :n],
            np.array([d[2] for d in dets]).reshape(-1, 4) * size,
            rtol=1e-4,
            atol=1e-3,
        )
        assert (
            np.all(ids[b, n:] == -1) and np.all(scores[b, n:] == -1) and np.all(bboxes[b, n:] == -1)
        )


@pytest.mark.parametrize("impl", IMPLS)
def test_one_anchor_yields_several_classes(impl):
    # Softmax [bg, c0, c1] = [0.1, 0.45, 0.45]: both classes above threshold -> two detections
    # of the same box (MultiBoxDetection would keep only the best class).
    anchors = np.array([[[0.1, 0.1, 0.5, 0.5], [0.6, 0.6, 0.9, 0.9]]])
    cls = np.log(np.array([[[0.1, 0.45, 0.45], [0.98, 0.01, 0.01]]]))
    pred = SSDPredictor(FixedOutputs(cls, np.zeros((1, 2, 4)), anchors), score_thresh=0.1, ops=impl)
    ids, scores, bboxes = [o.asnumpy()[0] for o in pred(mx.nd.zeros((1, 3, 100, 100)))]
    assert sorted(ids[:2, 0].tolist()) == [0, 1]
    np.testing.assert_allclose(scores[:2, 0], [0.45, 0.45], rtol=1e-5)
    np.testing.assert_allclose(bboxes[:2], [[10, 10, 50, 50]] * 2, rtol=1e-5)
    assert np.all(ids[2:] == -1)


@pytest.mark.parametrize("impl", IMPLS)
def test_boxes_scale_with_non_square_input(impl):
    anchors = np.array([[[0.25, 0.5, 0.75, 1.0]]])
    cls = np.log(np.array([[[0.05, 0.95]]]))
    pred = SSDPredictor(FixedOutputs(cls, np.zeros((1, 1, 4)), anchors), ops=impl)
    _, _, bboxes = pred(mx.nd.zeros((1, 3, 60, 200)))
    np.testing.assert_allclose(bboxes.asnumpy()[0, 0], [50, 30, 150, 60], rtol=1e-5)
