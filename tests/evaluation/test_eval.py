"""Tests for ssd_gluon.evaluation.voc_map.VOCMApMetric: hand-computed cases and parity with
gluoncv."""

import math

import numpy as np
import pytest

from ssd_gluon.evaluation.voc_map import (
    VOCMApMetric,
    bbox_iou_voc,
    match_detections,
    voc07_ap,
    voc_ap,
)

mx = pytest.importorskip("mxnet")
gluoncv_voc = pytest.importorskip("gluoncv.utils.metrics.voc_detection")

pytestmark = [
    # noise from the reference implementations, not from ssd_gluon.evaluation.voc_map
    pytest.mark.filterwarnings("ignore:Please import `csr_matrix`:DeprecationWarning"),
    pytest.mark.filterwarnings("ignore:Mean of empty slice:RuntimeWarning"),
]

# Well separated boxes (inclusive coordinates); the +1 offset does not matter for them.
BOX_A = [0, 0, 9, 9]
BOX_B = [20, 20, 29, 29]
BOX_C = [40, 40, 49, 49]
FAR = [100, 100, 109, 109]


def run_metric(preds, gts, use_07_metric=True, iou_thresh=0.5, class_names=None):
    """One image.  preds: [(box, label, score)], gts: [(box, label, difficult)]."""
    metric = VOCMApMetric(
        iou_thresh=iou_thresh, class_names=class_names, use_07_metric=use_07_metric
    )
    metric.update(*single_image_arrays(preds, gts))
    return metric.get()


def single_image_arrays(preds, gts):
    """Build the six update() arrays (batch of one image) from tuples."""

    def column(rows, i, width=None):
        values = [row[i] for row in rows]
        shape = (1, len(rows), width) if width else (1, len(rows))
        return np.array(values, dtype=np.float64).reshape(shape)

    return (
        column(preds, 0, 4),
        column(preds, 1),
        column(preds, 2),
        column(gts, 0, 4),
        column(gts, 1),
        column(gts, 2),
    )


def ap_of(result, name):
    names, values = result
    return values[names.index(name)]


# --------------------------------------------------------------------------- hand-built cases


@pytest.mark.parametrize("use_07", [True, False])
def test_perfect_detections(use_07):
    preds = [(BOX_A, 0, 0.9), (BOX_B, 0, 0.8), (BOX_C, 1, 0.7)]
    gts = [(BOX_A, 0, 0), (BOX_B, 0, 0), (BOX_C, 1, 0)]
    names, values = run_metric(preds, gts, use_07)
    assert names == ["0", "1", "mAP"]
    assert values == [1.0, 1.0, 1.0]


@pytest.mark.parametrize("use_07", [True, False])
def test_false_positive_below_all_true_positives(use_07):
    # ranks: TP, TP, FP -> recall (.5, 1, 1), precision (1, 1, 2/3).
    # Precision is 1 at every recall level reached, so AP = 1 for both methods.
    preds = [(BOX_A, 0, 0.9), (BOX_B, 0, 0.8), (FAR, 0, 0.7)]
    gts = [(BOX_A, 0, 0), (BOX_B, 0, 0)]
    assert ap_of(run_metric(preds, gts, use_07), "0") == pytest.approx(1.0, abs=1e-12)


@pytest.mark.parametrize("use_07, expected", [(True, 28 / 33), (False, 5 / 6)])
def test_false_positive_between_true_positives(use_07, expected):
    # ranks: TP, FP, TP -> recall (.5, .5, 1), precision (1, 1/2, 2/3).
    # 11-point: t = 0 .. 0.5 (6 thresholds) best precision 1; t = 0.6 .. 1 (5) -> 2/3:
    #           (6 * 1 + 5 * 2/3) / 11 = 28/33 = 0.8485...
    # all-point: 0.5 * 1 + 0.5 * 2/3 = 5/6 = 0.8333...  (the two methods differ)
    preds = [(BOX_A, 0, 0.9), (FAR, 0, 0.8), (BOX_B, 0, 0.7)]
    gts = [(BOX_A, 0, 0), (BOX_B, 0, 0)]
    assert ap_of(run_metric(preds, gts, use_07), "0") == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("use_07, expected", [(True, 6 / 11), (False, 0.5)])
def test_missed_object(use_07, expected):
    # one TP, one gt never detected: recall (.5,), precision (1,).
    # 11-point: thresholds 0, .1, .., .5 reach precision 1 -> 6/11; all-point: 0.5 * 1.
    preds = [(BOX_A, 0, 0.9)]
    gts = [(BOX_A, 0, 0), (BOX_B, 0, 0)]
    assert ap_of(run_metric(preds, gts, use_07), "0") == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("use_07", [True, False])
def test_false_positive_first(use_07):
    # ranks: FP, TP with one gt: recall (0, 1), precision (0, 1/2) -> 0.5 for both methods.
    preds = [(FAR, 0, 0.9), (BOX_A, 0, 0.8)]
    gts = [(BOX_A, 0, 0)]
    assert ap_of(run_metric(preds, gts, use_07), "0") == pytest.approx(0.5, abs=1e-12)


def test_class_with_only_difficult_ground_truth_is_nan_and_excluded():
    preds = [(BOX_A, 0, 0.9), (BOX_B, 1, 0.95), (FAR, 1, 0.3)]
    gts = [(BOX_A, 0, 0), (BOX_B, 1, 1)]
    names, values = run_metric(preds, gts)
    assert names == ["0", "1", "mAP"]
    assert values[0] == 1.0
    assert math.isnan(values[1])
    assert values[2] == 1.0  # mean over class 0 only


def test_detection_of_difficult_object_is_not_a_false_positive():
    # The highest-scored detection hits a difficult gt: ignored, so class 0 stays perfect.
    # (Counted as a FP, the ranks would be FP, TP -> AP 0.5.)
    preds = [(BOX_B, 0, 0.95), (BOX_A, 0, 0.5)]
    gts = [(BOX_A, 0, 0), (BOX_B, 0, 1)]
    assert ap_of(run_metric(preds, gts), "0") == 1.0
    # the difficult gt is not a positive either: nothing is missed
    assert ap_of(run_metric([(BOX_A, 0, 0.5)], gts), "0") == 1.0


def test_class_with_detections_only_is_nan():
    names, values = run_metric([(BOX_A, 0, 0.9), (BOX_B, 2, 0.9)], [(BOX_A, 0, 0)])
    assert names == ["0", "1", "2", "mAP"]
    assert values[0] == 1.0 and math.isnan(values[1]) and math.isnan(values[2])
    assert values[3] == 1.0


@pytest.mark.parametrize("use_07, expected", [(True, 28 / 33), (False, 5 / 6)])
def test_duplicate_detection_is_false_positive(use_07, expected):
    # A detected twice: ranks TP, FP (duplicate), TP -> same curve as the
    # FP-between-TPs case above.
    preds = [(BOX_A, 0, 0.9), ([0, 0, 9, 8], 0, 0.8), (BOX_B, 0, 0.7)]
    gts = [(BOX_A, 0, 0), (BOX_B, 0, 0)]
    assert ap_of(run_metric(preds, gts, use_07), "0") == pytest.approx(expected, abs=1e-12)


def test_match_detections_codes():
    gt = np.array([BOX_A, BOX_B], dtype=float)
    pred = np.array([BOX_A, BOX_A, BOX_B, FAR], dtype=float)
    assert match_detections(pred, gt, np.array([False, False]), 0.5).tolist() == [1, 0, 1, 0]
    assert match_detections(pred, gt, np.array([True, False]), 0.5).tolist() == [-1, -1, 1, 0]
    assert match_detections(pred, gt[:0], np.zeros(0, bool), 0.5).tolist() == [0, 0, 0, 0]


def test_duplicate_goes_to_best_gt_even_if_used():
    # VOC devkit / gluoncv: a detection is paired with its best-IoU gt whether or not
    # that gt is already taken; it does not fall back to the second-best gt.
    gt = np.array([BOX_A, [0, 0, 9, 8]], dtype=float)  # IoU(A, second) = 0.9
    pred = np.array([BOX_A, BOX_A], dtype=float)
    assert match_detections(pred, gt, np.array([False, False]), 0.5).tolist() == [1, 0]


def test_iou_uses_plus_one_offset():
    # widths are xmax - xmin + 1: [0,0,2,1] is 3x2, [0,0,1,1] is 2x2 -> 4 / 6.
    # (Without the offset this pair would have IoU exactly 0.5.)
    iou = bbox_iou_voc(np.array([[0, 0, 1, 1.0]]), np.array([[0, 0, 2, 1.0]]))
    assert iou[0, 0] == pytest.approx(4 / 6, abs=1e-15)
    # touching boxes overlap by one pixel column; disjoint ones not at all
    iou = bbox_iou_voc(np.array([[0, 0, 1, 1.0]]), np.array([[1, 0, 2, 1.0], [2, 0, 3, 1.0]]))
    assert iou[0].tolist() == [2 / 6, 0.0]


def test_iou_exactly_at_threshold_counts_as_match():
    # With the +1 offset: gt [0,0,3,0] is 4x1, pred [0,0,1,0] is 2x1, both inside
    # the same row -> IoU = 2 / 4 = 0.5 exactly in float arithmetic.
    gt_box, pred_box = [0, 0, 3, 0], [0, 0, 1, 0]
    assert bbox_iou_voc(np.array([pred_box], float), np.array([gt_box], float))[0, 0] == 0.5
    preds, gts = [(pred_box, 0, 0.9)], [(gt_box, 0, 0)]
    assert ap_of(run_metric(preds, gts, iou_thresh=0.5), "0") == 1.0  # IoU >= thresh
    assert ap_of(run_metric(preds, gts, iou_thresh=0.5 + 1e-9), "0") == 0.0
    # gluoncv agrees on both sides of the boundary
    for thresh in (0.5, 0.5 + 1e-9):
        ref = gluoncv_voc.VOC07MApMetric(iou_thresh=thresh, class_names=["0"])
        ref.update(*single_image_arrays(preds, gts))
        ours = ap_of(run_metric(preds, gts, iou_thresh=thresh), "0")
        assert ref.get()[1][0] == pytest.approx(ours, abs=1e-12)  # gluoncv sums 11 x 1/11


def test_11_point_and_all_point_differ():
    recall, precision = np.array([0.5, 0.5, 1.0]), np.array([1.0, 0.5, 2 / 3])
    assert voc07_ap(recall, precision) == pytest.approx(28 / 33, abs=1e-12)
    assert voc_ap(recall, precision) == pytest.approx(5 / 6, abs=1e-12)
    # recall 0.3 reached exactly: gluoncv's arange threshold 0.30000000000000004 is above it
    recall, precision = np.array([0.3]), np.array([1.0])
    assert voc07_ap(recall, precision) == pytest.approx(3 / 11, abs=1e-12)
    assert voc07_ap(np.zeros(0), np.zeros(0)) == 0.0 and voc_ap(np.zeros(0), np.zeros(0)) == 0.0


def test_empty_and_class_names_and_get_dict():
    metric = VOCMApMetric(class_names=["cat", "dog", "cow"])
    names, values = metric.get()
    assert names == ["cat", "dog", "cow", "mAP"] and all(math.isnan(v) for v in values)
    metric.update(*single_image_arrays([(BOX_A, 1, 0.9)], [(BOX_A, 1, 0), (BOX_B, 0, 0)]))
    out = metric.get_dict()
    assert out["per_class"]["cat"] == 0.0 and out["per_class"]["dog"] == 1.0
    assert math.isnan(out["per_class"]["cow"])
    assert out["mAP"] == 0.5
    metric.reset()
    assert math.isnan(metric.get_dict()["mAP"])


def test_accumulates_across_updates():
    # the FP-between-TPs case split over two images and two update calls
    metric = VOCMApMetric()
    metric.update(*single_image_arrays([(BOX_A, 0, 0.9), (FAR, 0, 0.8)], [(BOX_A, 0, 0)]))
    metric.update(*single_image_arrays([(BOX_B, 0, 0.7)], [(BOX_B, 0, 0)]))
    assert metric.get()[1][0] == pytest.approx(28 / 33, abs=1e-12)


# --------------------------------------------------------------------------- input flexibility


def test_ndarray_numpy_and_label_shapes_agree():
    rng = np.random.default_rng(7)
    batch = random_batch(rng, n_classes=4, n_images=3, max_gt=6, max_pred=10, integer=True)
    assign_scores(rng, [batch])
    results = []
    for convert in (lambda a: a, mx.nd.array):
        for expand in (False, True):
            arrays = [a[..., None] if expand and a.ndim == 2 else a for a in batch]
            metric = VOCMApMetric()
            metric.update(*[convert(a) for a in arrays])
            results.append(metric.get())
    for names, values in results[1:]:
        assert names == results[0][0]
        np.testing.assert_allclose(values, results[0][1], atol=1e-12)


def test_list_of_batches_with_different_sizes():
    rng = np.random.default_rng(11)
    batches = [random_batch(rng, 3, 2, 4, 5, True), random_batch(rng, 3, 3, 7, 9, True)]
    assign_scores(rng, batches)
    one_by_one = VOCMApMetric()
    for batch in batches:
        one_by_one.update(*batch)
    as_lists = VOCMApMetric()
    as_lists.update(*[[batch[i] for batch in batches] for i in range(6)])
    assert as_lists.get()[0] == one_by_one.get()[0]
    np.testing.assert_allclose(as_lists.get()[1], one_by_one.get()[1], atol=1e-12)


def test_no_difficult_flags_means_none_difficult():
    rng = np.random.default_rng(3)
    batch = random_batch(rng, 3, 2, 5, 8, True)
    assign_scores(rng, [batch])
    batch[5][:] = 0
    with_flags, without = VOCMApMetric(), VOCMApMetric()
    with_flags.update(*batch)
    without.update(*batch[:5])
    np.testing.assert_allclose(without.get()[1], with_flags.get()[1])


# --------------------------------------------------------------------------- parity with gluoncv


def random_batch(rng, n_classes, n_images, max_gt, max_pred, integer):
    """Random SSD-like batch: arrays (B,N,4) (B,N) (B,N) (B,M,4) (B,M) (B,M), -1 padded.

    Scores are left at 0 for valid rows (see assign_scores) and -1 for padding.
    """
    pb = -np.ones((n_images, max_pred, 4))
    pl = -np.ones((n_images, max_pred))
    ps = -np.ones((n_images, max_pred))
    gb = -np.ones((n_images, max_gt, 4))
    gl = -np.ones((n_images, max_gt))
    gd = np.zeros((n_images, max_gt))
    for i in range(n_images):
        m = rng.integers(0, max_gt + 1)
        xy = rng.uniform(0, 40, (m, 2))
        wh = rng.uniform(2, 20, (m, 2))
        boxes = np.concatenate([xy, xy + wh], axis=1)
        if integer:
            boxes = np.round(boxes)
        gb[i, :m] = boxes
        gl[i, :m] = rng.integers(0, n_classes, m)
        gd[i, :m] = rng.random(m) < 0.2
        preds, labels = [], []
        for box, label in zip(boxes, gl[i, :m]):
            for _ in range(rng.integers(0, 3)):  # 0-2 detections per object
                noise = rng.normal(0, 1.5, 4) * (wh.mean() / 8 if m else 1)
                preds.append(box + (np.round(noise) if integer else noise))
                labels.append(label if rng.random() < 0.85 else rng.integers(0, n_classes))
        for _ in range(rng.integers(0, 4)):  # background false positives
            xy = rng.uniform(0, 50, 2)
            box = np.concatenate([xy, xy + rng.uniform(2, 20, 2)])
            preds.append(np.round(box) if integer else box)
            labels.append(rng.integers(0, n_classes))
        preds, labels = preds[:max_pred], labels[:max_pred]
        n = len(preds)
        if n:
            order = rng.permutation(n)  # padding rows may sit anywhere: shuffle valid rows
            pb[i, :n] = np.array(preds)[order]
            pl[i, :n] = np.array(labels)[order]
            ps[i, :n] = 0
    return [pb, pl, ps, gb, gl, gd]


def assign_scores(rng, batches, levels=None):
    """Give the valid predictions of all batches distinct scores (or scores drawn from levels)."""
    masks = [batch[1] >= 0 for batch in batches]
    total = sum(int(mask.sum()) for mask in masks)
    scores = (
        (rng.permutation(total) + 1) / (total + 1) if levels is None else rng.choice(levels, total)
    )
    start = 0
    for batch, mask in zip(batches, masks):
        count = int(mask.sum())
        batch[2][mask] = scores[start : start + count]
        start += count


def compare_with_gluoncv(updates, n_classes, use_07, iou_thresh=0.5):
    names = [str(i) for i in range(n_classes)]
    ours = VOCMApMetric(iou_thresh=iou_thresh, class_names=names, use_07_metric=use_07)
    ref_cls = gluoncv_voc.VOC07MApMetric if use_07 else gluoncv_voc.VOCMApMetric
    ref = ref_cls(iou_thresh=iou_thresh, class_names=names)
    for arrays in updates:
        ours.update(*arrays)
        ref.update(*arrays)
    ref_names, ref_values = ref.get()
    our_names, our_values = ours.get()
    assert our_names == ref_names
    np.testing.assert_allclose(our_values, ref_values, rtol=0, atol=1e-6, equal_nan=True)
    return our_values


@pytest.mark.parametrize("seed", range(24))
def test_parity_with_gluoncv(seed):
    rng = np.random.default_rng(1000 + seed)
    n_classes = int(rng.integers(2, 7))
    integer = seed % 2 == 0
    batches = [
        random_batch(
            rng,
            n_classes,
            int(rng.integers(1, 5)),
            int(rng.integers(1, 8)),
            int(rng.integers(1, 12)),
            integer,
        )
        for _ in range(int(rng.integers(2, 5)))
    ]
    assign_scores(rng, batches)
    if seed % 4 == 0:  # float32 NDArrays (integer coordinates, exact in float32)
        batches = [[mx.nd.array(a) for a in batch] for batch in batches]
    # report one extra, never-seen class name on some seeds (nan in both)
    n_names = n_classes + (seed % 3 == 0)
    thresh = 0.5 if seed % 5 else 0.6
    values_07 = compare_with_gluoncv(batches, n_names, True, thresh)
    values_all = compare_with_gluoncv(batches, n_names, False, thresh)
    assert not all(math.isnan(v) for v in values_07 + values_all)


@pytest.mark.parametrize("seed", range(8))
def test_parity_with_gluoncv_tied_scores(seed):
    # Few detections (< 16 per class overall), so numpy's default argsort that
    # gluoncv uses is stable and the tie order is well defined on both sides.
    rng = np.random.default_rng(2000 + seed)
    batches = [random_batch(rng, 3, 2, 4, 5, True)]
    assign_scores(rng, batches, levels=[0.25, 0.5, 0.75])
    for use_07 in (True, False):
        compare_with_gluoncv(batches, 3, use_07)


# ------------------------------------------------------------- parity with the devkit reference


def to_devkit_images(batches):
    """Our update() arrays -> the reference's per-image lists (valid rows only)."""
    images = []
    for pb, pl, ps, gb, gl, gd in batches:
        pb, pl, ps, gb, gl, gd = [
            a.asnumpy() if hasattr(a, "asnumpy") else a for a in (pb, pl, ps, gb, gl, gd)
        ]
        for i in range(len(pb)):
            images.append(
                dict(
                    dets=[
                        (int(c), float(s), list(map(float, b)))
                        for c, s, b in zip(pl[i], ps[i], pb[i])
                        if c >= 0
                    ],
                    gts=[
                        (int(c), list(map(float, b)), bool(d))
                        for c, b, d in zip(gl[i], gb[i], gd[i])
                        if c >= 0
                    ],
                )
            )
    return images


@pytest.mark.parametrize("seed", range(16))
def test_parity_with_devkit_reference(seed):
    from references.voc_devkit_reference import NUMPY_THRESHOLDS, mean_ap

    rng = np.random.default_rng(3000 + seed)
    n_classes = int(rng.integers(2, 6))
    batches = [
        random_batch(
            rng,
            n_classes,
            int(rng.integers(1, 6)),
            int(rng.integers(1, 8)),
            int(rng.integers(1, 14)),
            seed % 2 == 0,
        )
        for _ in range(int(rng.integers(1, 4)))
    ]
    assign_scores(rng, batches)  # distinct scores: the rank order is unambiguous
    for use_07 in (True, False):
        ours = VOCMApMetric(class_names=[str(c) for c in range(n_classes)], use_07_metric=use_07)
        for batch in batches:
            ours.update(*batch)
        # numpy's 11 thresholds, as gluoncv (see test_devkit_thresholds_differ_at_0_6_and_0_7)
        ref_aps, ref_map = mean_ap(
            to_devkit_images(batches), n_classes, use_07, thresholds=NUMPY_THRESHOLDS
        )
        values = ours.get()[1]
        expected = [np.nan if a is None else a for a in ref_aps] + [ref_map]
        np.testing.assert_allclose(values, expected, rtol=0, atol=1e-9, equal_nan=True)


def test_devkit_thresholds_differ_at_0_6_and_0_7():
    """Where recall lands exactly on 0.6 and 0.7 (10 objects: 6 found first, the 7th at rank
    11), the MATLAB devkit's thresholds 0.6 and 0.7 count those points and numpy's
    0.6000000000000001 and 0.7000000000000001 (ours, gluoncv's) do not: precision 1 instead
    of 7/11 at t=0.6 and 7/11 instead of 0 at t=0.7, 1/11 of AP in all. Documented in
    ssd_gluon.evaluation.voc_map."""
    from references.voc_devkit_reference import MATLAB_THRESHOLDS, ap_11_point

    gt = [[10 * i, 0, 10 * i + 5, 5] for i in range(10)]
    dets = [[10 * i, 0, 10 * i + 5, 5] for i in range(6)] + [[200, 200, 205, 205]] * 4 + [gt[6]]
    scores = np.linspace(1, 0.1, len(dets))
    metric = VOCMApMetric(class_names=["a"])
    metric.update(
        np.array([dets]), np.zeros((1, len(dets))), scores[None], np.array([gt]), np.zeros((1, 10))
    )
    ours = metric.get()[1][0]
    recall = [min(i + 1, 6) / 10 for i in range(10)] + [0.7]
    precision = [min(i + 1, 6) / (i + 1) for i in range(10)] + [7 / 11]
    assert ours == pytest.approx(
        ap_11_point(recall, precision, thresholds=[k * 0.1 for k in range(11)])
    )
    assert ap_11_point(recall, precision, MATLAB_THRESHOLDS) - ours == pytest.approx(1 / 11)
