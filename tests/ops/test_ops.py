"""The custom operator library (ops/) against MXNet's contrib built-ins, NumPy references
and hand-built edge cases."""

import mxnet as mx
import numpy as np
import pytest
from mxnet import autograd

from ssd_gluon import get_model, ops
from ssd_gluon.deploy.symbol import export_detector
from ssd_gluon.deploy.verify import verify_export
from ssd_gluon.model.loss import SSDLoss
from ssd_gluon.model.target import MultiBoxTargetGenerator

from references.detection_reference import detection_output

VAR = np.array([0.1, 0.1, 0.2, 0.2])


@pytest.fixture(autouse=True, scope="module")
def library():
    assert ops.is_built(), "ops library not built: run `python ops/build.py`"
    ops.load()


def random_labels(rng, batch, max_gt, min_gt=1, width=5):
    """(B, M, width) rows [class, x0, y0, x1, y1, ...], padded with -1."""
    lab = -np.ones((batch, max_gt, width), np.float32)
    for b in range(batch):
        k = rng.randint(min_gt, max_gt + 1)
        xy = rng.uniform(0, 0.8, (k, 2))
        lab[b, :k, 0] = rng.randint(0, 20, k)
        lab[b, :k, 1:3] = xy
        lab[b, :k, 3:5] = np.minimum(xy + rng.uniform(0.05, 0.5, (k, 2)), 1)
        lab[b, :k, 5:] = rng.randint(0, 2, (k, width - 5))
    return lab


def grid_anchors(size, sizes=(0.2, 0.35), ratios=(1, 2, 0.5)):
    return mx.nd.contrib.MultiBoxPrior(mx.nd.zeros((1, 1, size, size)), sizes=sizes, ratios=ratios)


def both(name, *args, **kw):
    """(ours, built-in) outputs as lists of NumPy arrays."""
    ours = getattr(mx.nd, "ssd_multibox_" + name)(*args, **kw)
    ref = getattr(mx.nd.contrib, "MultiBox" + name.capitalize())(*args, **kw)

    def as_list(o):
        return [a.asnumpy() for a in (o if isinstance(o, (list, tuple)) else [o])]

    return as_list(ours), as_list(ref)


# ---- prior ------------------------------------------------------------------------------


@pytest.mark.parametrize("hw", [(1, 1), (3, 5), (19, 19), (38, 38), (7, 4)])
@pytest.mark.parametrize(
    "attrs",
    [
        dict(sizes=(0.1, 0.141), ratios=(1, 2, 0.5)),
        dict(sizes=(0.5,), ratios=(1, 2, 3, 1 / 3), clip=True),
        dict(sizes=(0.3, 0.6, 0.9), ratios=(2, 1), steps=(0.1, 0.05), offsets=(0.2, 0.7)),
        dict(),
    ],
)
def test_prior_matches_builtin(hw, attrs):
    x = mx.nd.zeros((2, 3) + hw)
    ours, ref = both("prior", x, **attrs)
    assert ours[0].shape == ref[0].shape
    np.testing.assert_allclose(ours[0], ref[0], rtol=1e-6, atol=1e-6)


def test_prior_symbol_and_bad_attrs():
    sym = mx.sym.ssd_multibox_prior(mx.sym.var("x"), sizes=(0.2,), ratios=(1, 2))
    _, out_shapes, _ = sym.infer_shape(x=(1, 8, 4, 6))
    assert out_shapes == [(1, 4 * 6 * 2, 4)]
    with pytest.raises(mx.base.MXNetError, match="sizes must be positive"):
        mx.nd.ssd_multibox_prior(mx.nd.zeros((1, 1, 2, 2)), sizes=(-0.2,)).wait_to_read()
    with pytest.raises(mx.base.MXNetError, match="must be float32"):
        mx.nd.ssd_multibox_prior(mx.nd.zeros((1, 1, 2, 2), dtype="float64")).wait_to_read()


# ---- target -----------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize(
    "attrs",
    [
        dict(negative_mining_ratio=3, negative_mining_thresh=0.5),
        dict(),
        dict(
            overlap_threshold=0.3,
            negative_mining_ratio=2,
            negative_mining_thresh=0.4,
            variances=(0.2, 0.2, 0.3, 0.3),
        ),
        dict(overlap_threshold=0.6, ignore_label=-2),
    ],
)
def test_target_matches_builtin(seed, attrs):
    rng = np.random.RandomState(seed)
    batch, max_gt, classes = 1 + seed % 5, [1, 3, 10, 25][seed % 4], 1 + [1, 4, 20][seed % 3]
    anchors = grid_anchors([5, 10, 19][seed % 3])
    n = anchors.shape[1]
    labels = mx.nd.array(random_labels(rng, batch, max_gt, width=5 + seed % 2))
    cls = mx.nd.array(rng.normal(size=(batch, classes, n)))
    ours, ref = both("target", anchors, labels, cls, **attrs)
    np.testing.assert_array_equal(ours[2], ref[2])
    np.testing.assert_array_equal(ours[1], ref[1])
    np.testing.assert_allclose(ours[0], ref[0], rtol=1e-5, atol=1e-6)
    assert (ours[2] > 0).any()


def target(anchors, labels, cls=None, **attrs):
    anchors, labels = np.asarray(anchors, np.float32), np.asarray(labels, np.float32)
    if cls is None:
        cls = np.zeros((labels.shape[0], 3, anchors.shape[1]), np.float32)
    outs = mx.nd.ssd_multibox_target(
        mx.nd.array(anchors), mx.nd.array(labels), mx.nd.array(cls), **attrs
    )
    return [o.asnumpy() for o in outs]


def test_target_one_ground_truth_encoding():
    anchors = [[[0.0, 0.0, 0.5, 0.5], [0.4, 0.4, 0.9, 0.8], [0.5, 0.5, 1.0, 1.0]]]
    gt = np.array([0.45, 0.42, 0.85, 0.9])
    loc, mask, cls = target(anchors, [[[2, *gt]]])
    np.testing.assert_array_equal(cls[0], [0, 3, 0])  # no mining: the rest is background
    a = np.array(anchors[0][1])
    aw, ah = a[2] - a[0], a[3] - a[1]
    expect = [
        ((gt[0] + gt[2]) - (a[0] + a[2])) / 2 / aw / VAR[0],
        ((gt[1] + gt[3]) - (a[1] + a[3])) / 2 / ah / VAR[1],
        np.log((gt[2] - gt[0]) / aw) / VAR[2],
        np.log((gt[3] - gt[1]) / ah) / VAR[3],
    ]
    np.testing.assert_allclose(loc[0, 4:8], expect, rtol=1e-5)
    np.testing.assert_array_equal(mask[0], [0] * 4 + [1] * 4 + [0] * 4)


def test_target_no_ground_truth():
    rng = np.random.RandomState(0)
    anchors = grid_anchors(5).asnumpy()
    n = anchors.shape[1]
    labels = -np.ones((2, 4, 5), np.float32)
    cls = rng.normal(size=(2, 3, n)).astype(np.float32)
    # Mining with nothing to mine against: every anchor ignored (what the built-in does too).
    ours = target(anchors, labels, cls, negative_mining_ratio=3)
    ref = [
        o.asnumpy()
        for o in mx.nd.contrib.MultiBoxTarget(
            mx.nd.array(anchors), mx.nd.array(labels), mx.nd.array(cls), negative_mining_ratio=3
        )
    ]
    for a, b in zip(ours, ref):
        np.testing.assert_array_equal(a, b)
    assert np.all(ours[2] == -1) and not ours[0].any() and not ours[1].any()
    # minimum_negative_samples: the hardest anchors (lowest background probability) are taken.
    _, _, cls_t = target(anchors, labels, cls, negative_mining_ratio=3, minimum_negative_samples=7)
    e = np.exp(cls - cls.max(1, keepdims=True))
    bg = e[:, 0] / e.sum(1)
    for b in range(2):
        assert set(np.flatnonzero(cls_t[b] == 0)) == set(np.argsort(bg[b], kind="stable")[:7])
        assert np.all(cls_t[b][cls_t[b] != 0] == -1)
    # Without mining every anchor is background: an empty image still teaches something.
    _, _, cls_t = target(anchors, labels, cls)
    assert np.all(cls_t == 0)


def test_target_ignores_padding_anywhere_and_degenerate_boxes():
    rng = np.random.RandomState(3)
    anchors = grid_anchors(10).asnumpy()
    cls = rng.normal(size=(1, 4, anchors.shape[1])).astype(np.float32)
    good = [[1, 0.1, 0.1, 0.4, 0.5], [0, 0.5, 0.4, 0.9, 0.9]]
    messy = [
        good[0],
        [-1] * 5,
        [2, 0.3, 0.3, 0.3, 0.6],  # padding, zero width
        good[1],
        [3, 0.7, 0.2, 0.6, 0.4],
    ]  # x1 < x0
    compact = good + [[-1] * 5] * 3
    for attrs in (dict(negative_mining_ratio=3), dict()):
        for a, b in zip(
            target(anchors, [messy], cls, **attrs), target(anchors, [compact], cls, **attrs)
        ):
            np.testing.assert_array_equal(a, b)
            assert np.all(np.isfinite(a))


def test_target_boxes_outside_the_image_match_builtin():
    rng = np.random.RandomState(5)
    anchors = grid_anchors(10)
    labels = mx.nd.array([[[1, -0.2, -0.1, 0.3, 0.4], [0, 0.7, 0.6, 1.3, 1.2]]])
    cls = mx.nd.array(rng.normal(size=(1, 3, anchors.shape[1])))
    ours, ref = both("target", anchors, labels, cls, negative_mining_ratio=3)
    for a, b in zip(ours, ref):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    assert set(np.unique(ours[2])) >= {1.0, 2.0}


def test_target_iou_exactly_at_threshold_is_not_positive():
    # Anchor 0 equals the ground truth (bipartite match); anchor 1 has IoU exactly 0.5 and
    # anchor 2 IoU 0.6: the paper's rule is "higher than" the threshold.
    gt = [0, 0.0, 0.0, 0.5, 1.0]
    anchors = [[[0.0, 0.0, 0.5, 1.0], [0.0, 0.0, 0.5, 0.5], [0.0, 0.0, 0.5, 0.6]]]
    _, _, cls = target(anchors, [[gt]], overlap_threshold=0.5)
    np.testing.assert_array_equal(cls[0], [1, 0, 1])


def test_target_too_few_negatives_takes_what_exists():
    # Every anchor overlaps the ground truth: 3 negatives per positive cannot be found. The
    # built-in aborts ("temp.size() >= num_negative"); ours takes the candidates there are.
    anchors = [
        [[0.1, 0.1, 0.6, 0.6], [0.0, 0.0, 0.5, 0.5], [0.3, 0.3, 0.7, 0.7], [0.0, 0.0, 1.0, 1.0]]
    ]
    _, _, cls = target(
        anchors, [[[0, 0.1, 0.1, 0.6, 0.6]]], negative_mining_ratio=3, negative_mining_thresh=0.5
    )
    assert cls[0, 0] == 1 and np.all(cls[0, 1:] == 0)


def test_target_shape_errors():
    with pytest.raises(mx.base.MXNetError, match="label must be"):
        mx.nd.ssd_multibox_target(
            grid_anchors(2), mx.nd.zeros((1, 2, 4)), mx.nd.zeros((1, 3, 16))
        ).wait_to_read()
    with pytest.raises(mx.base.MXNetError, match="cls_pred must be"):
        mx.nd.ssd_multibox_target(
            grid_anchors(2), mx.nd.zeros((1, 2, 5)), mx.nd.zeros((1, 3, 15))
        ).wait_to_read()


# ---- detection --------------------------------------------------------------------------


def detection_inputs(rng, batch, classes, n, scale=3.0):
    xy = rng.uniform(0, 0.85, (n, 2))
    anchors = np.concatenate([xy, xy + rng.uniform(0.03, 0.4, (n, 2))], 1)[None]
    logits = rng.normal(scale=scale, size=(batch, classes + 1, n))
    prob = np.exp(logits - logits.max(1, keepdims=True))
    prob /= prob.sum(1, keepdims=True)
    loc = rng.normal(scale=0.5, size=(batch, n * 4))
    return [mx.nd.array(a) for a in (prob, loc, anchors)]


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize(
    "attrs",
    [
        dict(nms_topk=400),
        dict(),
        dict(nms_topk=20, threshold=0.2, nms_threshold=0.3),
        dict(force_suppress=True, clip=False),
        dict(nms_threshold=0),
        dict(threshold=0.5, nms_topk=5),
    ],
)
def test_detection_best_class_matches_builtin(seed, attrs):
    rng = np.random.RandomState(seed)
    inputs = detection_inputs(rng, 1 + seed % 3, [1, 4, 20][seed % 3], [50, 300, 1000][seed % 3])
    ours, ref = both("detection", *inputs, **attrs)
    np.testing.assert_array_equal(ours[0][..., 0], ref[0][..., 0])
    np.testing.assert_allclose(ours[0], ref[0], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("seed", range(6))
def test_detection_per_class_matches_numpy_reference(seed):
    rng = np.random.RandomState(seed)
    batch, classes, n = 2, [1, 4, 20][seed % 3], [40, 200, 600][seed % 3]
    topk, keep, thresh, nms = (20, 30, 0.05, 0.45) if seed % 2 else (100, 200, 0.01, 0.5)
    prob, loc, anchors = detection_inputs(rng, batch, classes, n, scale=2.0)
    out = mx.nd.ssd_multibox_detection(
        prob,
        loc,
        anchors,
        per_class=True,
        nms_topk=topk,
        keep_topk=keep,
        threshold=thresh,
        nms_threshold=nms,
    ).asnumpy()
    assert out.shape == (batch, keep, 6)
    expected = detection_output(
        prob.asnumpy().transpose(0, 2, 1),
        loc.asnumpy().reshape(batch, -1, 4),
        anchors.asnumpy(),
        nms,
        topk,
        keep,
        thresh,
    )
    for b, dets in enumerate(expected):
        k = len(dets)
        assert k > 0
        np.testing.assert_array_equal(out[b, :k, 0], [d[0] for d in dets])
        np.testing.assert_allclose(out[b, :k, 1], [d[1] for d in dets], rtol=1e-6)
        np.testing.assert_allclose(
            out[b, :k, 2:], np.array([d[2] for d in dets]), rtol=1e-5, atol=1e-6
        )
        assert np.all(out[b, k:] == -1)


@pytest.mark.parametrize("per_class", [False, True])
def test_detection_background_id_moves_the_background_column(per_class):
    # MultiBoxDetection accepts background_id but always treats class 0 as background; ours
    # honours it: moving the background row to index 2 must give the same detections.
    prob, loc, anchors = detection_inputs(np.random.RandomState(2), 2, 4, 200)
    p = prob.asnumpy()
    moved = mx.nd.array(np.concatenate([p[:, 1:3], p[:, :1], p[:, 3:]], 1))
    kw = dict(per_class=per_class, nms_topk=50)
    a = mx.nd.ssd_multibox_detection(prob, loc, anchors, **kw).asnumpy()
    b = mx.nd.ssd_multibox_detection(moved, loc, anchors, background_id=2, **kw).asnumpy()
    np.testing.assert_array_equal(a, b)


def test_detection_all_background_gives_no_rows():
    rng = np.random.RandomState(0)
    prob, loc, anchors = detection_inputs(rng, 2, 4, 100)
    prob = mx.nd.concat(mx.nd.ones((2, 1, 100)), mx.nd.zeros((2, 4, 100)), dim=1)
    for per_class in (False, True):
        out = mx.nd.ssd_multibox_detection(prob, loc, anchors, per_class=per_class).asnumpy()
        assert np.all(out == -1)


def test_detection_per_class_keeps_several_classes_of_one_anchor():
    anchors = mx.nd.array([[[0.1, 0.1, 0.5, 0.5], [0.6, 0.6, 0.9, 0.9]]])
    prob = mx.nd.array([[[0.1, 0.98], [0.45, 0.01], [0.45, 0.01]]])
    loc = mx.nd.zeros((1, 8))
    out = mx.nd.ssd_multibox_detection(
        prob, loc, anchors, per_class=True, keep_topk=4, threshold=0.1
    ).asnumpy()[0]
    np.testing.assert_allclose(
        out[:2], [[0, 0.45, 0.1, 0.1, 0.5, 0.5], [1, 0.45, 0.1, 0.1, 0.5, 0.5]], rtol=1e-6
    )
    assert np.all(out[2:] == -1)
    best = mx.nd.contrib.MultiBoxDetection(prob, loc, anchors, threshold=0.1).asnumpy()[0]
    assert (best[:, 0] >= 0).sum() == 1  # the built-in keeps one class


def test_detection_errors():
    prob, loc, anchors = detection_inputs(np.random.RandomState(0), 1, 3, 10)
    with pytest.raises(mx.base.MXNetError, match="force_suppress"):
        mx.nd.ssd_multibox_detection(prob, loc, anchors, per_class=True, force_suppress=True)
    with pytest.raises(mx.base.MXNetError, match="loc_pred must be"):
        mx.nd.ssd_multibox_detection(prob, loc[:, :8], anchors).wait_to_read()


# ---- in the model -----------------------------------------------------------------------


def test_loss_gradients_match_builtin_path():
    rng = np.random.RandomState(0)
    x = mx.nd.array(rng.normal(size=(4, 3, 96, 96)))
    labels = mx.nd.array(random_labels(rng, 4, 5))
    grads = {}
    for impl in ("builtin", "custom"):
        mx.random.seed(1)
        net = get_model("ssd_demo", ops=impl)
        net.initialize(mx.init.Xavier())
        tgen, loss = MultiBoxTargetGenerator(ops=impl), SSDLoss()
        for block in (net, tgen, loss):
            block.hybridize()
        with autograd.record():
            cls_preds, box_preds, anchors = net(x)
            total, _, _ = loss(cls_preds, box_preds, *tgen(anchors, labels, cls_preds))
        total.backward()
        grads[impl] = (
            total.asscalar(),
            {
                k.split("_", 1)[1]: p.grad().asnumpy()
                for k, p in net.collect_params().items()
                if p.grad_req != "null"
            },
        )
    assert grads["custom"][0] == pytest.approx(grads["builtin"][0], rel=1e-5)
    assert grads["custom"][1].keys() == grads["builtin"][1].keys()
    for name, g in grads["builtin"][1].items():
        np.testing.assert_allclose(grads["custom"][1][name], g, rtol=1e-4, atol=1e-6, err_msg=name)


def test_model_graph_uses_custom_ops_and_exports(tmp_path):
    mx.random.seed(0)
    net = get_model("ssd_demo", ops="custom")
    net.initialize(mx.init.Xavier())
    net.hybridize()
    net(mx.nd.zeros((1, 3, 96, 96)))
    prefix = str(tmp_path / "custom")
    sym_file, _, _ = export_detector(net, prefix, 96, verify=False)
    graph = open(sym_file).read()
    assert "ssd_multibox_prior" in graph and "ssd_multibox_detection" in graph
    assert "MultiBoxPrior" not in graph and "box_nms" not in graph
    assert verify_export(net, prefix, 96, library=ops.LIBRARY_PATH) >= 0


def test_auto_falls_back_to_builtin_when_not_built(monkeypatch, tmp_path):
    monkeypatch.setattr(ops, "LIBRARY_PATH", str(tmp_path / "missing.so"))
    monkeypatch.setattr(ops, "_loaded", False)
    assert ops.resolve("auto") == "builtin"
    with pytest.raises(ops.OpsNotBuiltError, match="missing.so"):
        ops.resolve("custom")


def test_loads_after_horovod_mxnet():
    # horovod.mxnet puts libmxnet.so (which exports its own lib_api classes) in the global
    # symbol scope; the library must still bind to its own copy (it died with SIGFPE).
    import subprocess
    import sys

    code = (
        "import horovod.mxnet, mxnet as mx\n"
        "from ssd_gluon import ops\n"
        "ops.load()\n"
        "print(mx.nd.ssd_multibox_prior(mx.nd.zeros((1, 1, 2, 2)), sizes=(0.5,)).shape)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, (proc.returncode, proc.stderr[-1000:])
    assert "(1, 4, 4)" in proc.stdout
