"""Tests for ssd_gluon.evaluation.coco_map.COCOMetric: hand-computed COCO APs, and parity
with pycocotools run directly on JSON files written here."""

import contextlib
import io
import json

import numpy as np
import pytest

from ssd_gluon.evaluation.coco_map import STAT_NAMES, COCOMetric

pycocotools_coco = pytest.importorskip("pycocotools.coco")
pycocotools_eval = pytest.importorskip("pycocotools.cocoeval")

BOX_A = [10, 10, 110, 110]  # 100 x 100: large (> 96^2)
BOX_B = [200, 200, 260, 260]  # 60 x 60: medium
BOX_C = [300, 50, 320, 70]  # 20 x 20: small (< 32^2)
N_IOU = 10  # COCO's IoU thresholds .50:.05:.95
N_RECALL = 101  # COCO's recall points 0:.01:1


def batch(images, pad_dets=0, pad_gts=0):
    """Padded ``update`` arrays of ``images``: [(preds [(box, label, score)], gts [(box,
    label, crowd)])]; ``pad_*`` extra padding rows (label -1) with garbage boxes and scores."""
    n = max(len(p) for p, _ in images) + pad_dets
    m = max(len(g) for _, g in images) + pad_gts
    b = len(images)
    pred_boxes = np.tile(np.float32([5, 5, 50, 50]), (b, n, 1))  # garbage under padding
    pred_labels = -np.ones((b, n), np.float32)
    pred_scores = np.full((b, n), 0.99, np.float32)
    gt_boxes = np.tile(np.float32([5, 5, 50, 50]), (b, m, 1))
    gt_labels = -np.ones((b, m), np.float32)
    gt_crowds = np.ones((b, m), np.float32)
    for i, (preds, gts) in enumerate(images):
        for j, (box, label, score) in enumerate(preds):
            pred_boxes[i, j], pred_labels[i, j], pred_scores[i, j] = box, label, score
        for j, (box, label, crowd) in enumerate(gts):
            gt_boxes[i, j], gt_labels[i, j], gt_crowds[i, j] = box, label, crowd
    return pred_boxes, pred_labels, pred_scores, gt_boxes, gt_labels, gt_crowds


def close(a, b):
    """Equal to 1e-12: pycocotools' precision is ``tp / (tp + fp + eps)``, so a perfect AP is
    1 - 2e-16."""
    return abs(a - b) < 1e-12


def coco_result(images, **kwargs):
    metric = COCOMetric(**kwargs)
    metric.update(*batch(images))
    return metric.get_dict()


# -- hand-computed cases -------------------------------------------------------------------


def test_perfect_detections_score_one():
    images = [
        ([(BOX_A, 0, 0.9), (BOX_B, 1, 0.8)], [(BOX_A, 0, 0), (BOX_B, 1, 0)]),
        ([(BOX_C, 1, 0.7), (BOX_A, 2, 0.6)], [(BOX_C, 1, 0), (BOX_A, 2, 0)]),
    ]
    result = coco_result(images, class_names=["a", "b", "c"])
    for name in ("AP", "AP50", "AP75", "mAP", "AR100", "AP_small", "AP_medium", "AP_large"):
        assert close(result[name], 1.0), name
    assert close(result["AR1"], 1.0)  # one object per class and image
    assert sorted(result["per_class"]) == ["a", "b", "c"]
    assert all(close(ap, 1.0) for ap in result["per_class"].values())


def test_wrong_class_scores_zero():
    images = [([(BOX_A, 1, 0.9), (BOX_B, 0, 0.8)], [(BOX_A, 0, 0), (BOX_B, 1, 0)])]
    result = coco_result(images)
    assert result["AP"] == 0.0 and result["AP50"] == 0.0 and result["AR100"] == 0.0
    assert result["per_class"] == {"0": 0.0, "1": 0.0}


def test_half_recall_is_51_of_101_points():
    # 2 ground truths, one exact detection: precision 1 at recall 0..0.5, then nothing, at
    # every IoU threshold -> 51 of the 101 recall points have precision 1.
    result = coco_result([([(BOX_A, 0, 0.9)], [(BOX_A, 0, 0), (BOX_B, 0, 0)])])
    for name in ("AP", "AP50", "AP75"):
        assert close(result[name], 51 / N_RECALL), name
    assert result["AR100"] == 0.5


def test_iou_between_thresholds():
    # GT 100 x 100, detection its top 62.5 rows: IoU = 6250 / 10000 = 0.625, which matches
    # at the thresholds 0.50, 0.55, 0.60 and not at 0.65 ... 0.95.
    gt = [0, 0, 100, 100]
    det = [0, 0, 100, 62.5]
    result = coco_result([([(det, 0, 0.9)], [(gt, 0, 0)])])
    assert close(result["AP50"], 1.0)
    assert result["AP75"] == 0.0
    assert close(result["AP"], 3 / N_IOU)


def test_crowd_is_neither_a_miss_nor_a_false_positive():
    crowd_box = [300, 300, 500, 500]
    in_crowd = [320, 320, 370, 370]  # IoU 0.0625 with the crowd box, but inside it
    images = [
        (
            [(in_crowd, 0, 0.95), (BOX_A, 0, 0.9)],  # the detection in the crowd ranks first
            [(BOX_A, 0, 0), (crowd_box, 0, 1), ([600, 0, 700, 100], 0, 1)],  # 2nd crowd: missed
        )
    ]
    result = coco_result(images)
    assert close(result["AP"], 1.0) and result["AR100"] == 1.0
    # the same boxes without the crowd flag: a false positive first, and two misses, so
    # precision 1/2 up to recall 1/3 (34 of the 101 points)
    images_plain = [(images[0][0], [(box, label, 0) for box, label, _ in images[0][1]])]
    plain = coco_result(images_plain)
    assert close(plain["AP"], 0.5 * 34 / N_RECALL)
    assert plain["AR100"] == pytest.approx(1 / 3)


def test_area_is_the_box_area():
    # w*h = 31 x 33 = 1023 < 32^2: small; 32 x 33 = 1056: medium.
    images = [
        (
            [([0, 0, 31, 33], 0, 0.9), ([100, 100, 132, 133], 1, 0.9)],
            [([0, 0, 31, 33], 0, 0), ([100, 100, 132, 133], 1, 0)],
        )
    ]
    result = coco_result(images)
    assert close(result["AP_small"], 1.0) and close(result["AP_medium"], 1.0)
    assert result["AP_large"] == -1.0  # pycocotools: no ground truth in that range


def test_class_without_ground_truth_is_left_out():
    images = [([(BOX_A, 0, 0.9), (BOX_B, 1, 0.8)], [(BOX_A, 0, 0)])]
    result = coco_result(images, class_names=["a", "b", "c"])
    assert list(result["per_class"]) == ["a"] and close(result["per_class"]["a"], 1.0)
    assert close(result["AP"], 1.0)  # the false positives of "b" count nowhere
    json.dumps(result, allow_nan=False)


def test_no_detections_at_all():
    result = coco_result([([], [(BOX_A, 0, 0)])])
    assert result["AP"] == 0.0 and result["AR100"] == 0.0 and result["per_class"] == {"0": 0.0}


def test_summary_is_kept_not_printed(capsys):
    metric = COCOMetric()
    metric.update(*batch([([(BOX_A, 0, 0.9)], [(BOX_A, 0, 0)])]))
    metric.get_dict()
    assert capsys.readouterr().out == ""
    assert "Average Precision  (AP) @[ IoU=0.50:0.95 | area=   all | maxDets=100 ] = 1.000" in (
        metric.summary
    )


def test_bad_ids_are_refused():
    arrays = batch([([(BOX_A, 3, 0.9)], [(BOX_A, 0, 0)])])
    metric = COCOMetric(category_ids=[1, 2])
    metric.update(*arrays, image_ids=[7])
    with pytest.raises(ValueError, match="image id 7 given twice"):
        metric.update(*arrays, image_ids=[7])
    with pytest.raises(ValueError, match="labels \\[3\\] have no category id"):
        metric.get_dict()
    with pytest.raises(ValueError, match="distinct"):
        COCOMetric(category_ids=[1, 1])


# -- parity with pycocotools on files ----------------------------------------------------------

CATEGORY_IDS = [1, 5, 18]
N_IMAGES = 20


def random_images(seed=0, width=640, height=480):
    """Plausible detections: every image 0-7 ground truths (sizes 8..300 px, 5% crowd),
    detections = jittered ground truths (sometimes the wrong class, sometimes twice) and
    random false positives, all float32 like the evaluation loop's."""
    rng = np.random.RandomState(seed)
    images = []
    for _ in range(N_IMAGES):
        gts, preds = [], []
        for _ in range(rng.randint(0, 8)):
            w, h = np.exp(rng.uniform(np.log(8), np.log(300), 2))
            x, y = rng.uniform(0, width - w), rng.uniform(0, height - h)
            box = np.float32([x, y, x + w, y + h])
            label = rng.randint(3)
            gts.append((box, label, int(rng.rand() < 0.05)))
            for _ in range(rng.choice([0, 1, 1, 1, 2])):
                jitter = rng.normal(0, 0.08, 4) * [w, h, w, h]
                wrong = rng.rand() < 0.1
                preds.append(
                    (
                        box + jitter.astype(np.float32),
                        rng.randint(3) if wrong else label,
                        rng.rand(),
                    )
                )
        for _ in range(rng.randint(0, 5)):
            x, y = rng.uniform(0, width - 50), rng.uniform(0, height - 50)
            w, h = rng.uniform(5, 50, 2)
            preds.append((np.float32([x, y, x + w, y + h]), rng.randint(3), 0.6 * rng.rand()))
        images.append((preds, gts))
    return images


def image_ids():
    return [1000 + 3 * i for i in range(N_IMAGES)]


def xywh(box):
    x1, y1, x2, y2 = np.asarray(box, np.float32).astype(np.float64)
    return [float(x1), float(y1), float(x2 - x1), float(y2 - y1)]


def write_reference_files(tmp_path, images):
    """The COCO ground truth and results files of ``images``, written independently of
    COCOMetric (float32 values, as they reach the metric, widened to float64)."""
    gt = {
        "info": {},
        "images": [{"id": i} for i in image_ids()],
        "categories": [{"id": c, "name": "c%d" % c} for c in CATEGORY_IDS],
        "annotations": [],
    }
    results = []
    for image_id, (preds, gts) in zip(image_ids(), images):
        for box, label, crowd in gts:
            b = xywh(box)
            gt["annotations"].append(
                {
                    "id": len(gt["annotations"]) + 1,
                    "image_id": image_id,
                    "category_id": CATEGORY_IDS[label],
                    "bbox": b,
                    "area": b[2] * b[3],
                    "iscrowd": crowd,
                }
            )
        for box, label, score in preds:
            results.append(
                {
                    "image_id": image_id,
                    "category_id": CATEGORY_IDS[label],
                    "bbox": xywh(box),
                    "score": float(np.float32(score)),
                }
            )
    gt_file, res_file = str(tmp_path / "gt.json"), str(tmp_path / "res.json")
    with open(gt_file, "w") as f:
        json.dump(gt, f)
    with open(res_file, "w") as f:
        json.dump(results, f)
    return gt_file, res_file, results


def run_pycocotools(gt_file, res_file, cat_ids=None):
    """``COCOeval.stats`` of the files, by pycocotools alone."""
    with contextlib.redirect_stdout(io.StringIO()):
        gt = pycocotools_coco.COCO(gt_file)
        coco_eval = pycocotools_eval.COCOeval(gt, gt.loadRes(res_file), "bbox")
        if cat_ids is not None:
            coco_eval.params.catIds = cat_ids
        coco_eval.evaluate()
        coco_eval.accumulate()
        coco_eval.summarize()
    return coco_eval.stats


@pytest.fixture(scope="module")
def random_set():
    images = random_images()
    metric = COCOMetric(class_names=["c%d" % c for c in CATEGORY_IDS], category_ids=CATEGORY_IDS)
    metric.update(*batch(images, pad_dets=3, pad_gts=2), image_ids=image_ids())
    return images, metric, metric.get_dict()


def test_random_set_is_plausible(random_set):
    images, _, ours = random_set
    assert sum(len(g) for _, g in images) > 50 and any(c for _, g in images for _, _, c in g)
    assert 0.2 < ours["AP"] < 0.9  # neither trivial nor hopeless
    assert all(ours[name] > -1 for name in STAT_NAMES)  # every area range has objects


def test_stats_equal_pycocotools_on_files(tmp_path, random_set):
    images, _, ours = random_set
    gt_file, res_file, _ = write_reference_files(tmp_path, images)
    stats = run_pycocotools(gt_file, res_file)
    for name, value in zip(STAT_NAMES, stats):
        assert abs(ours[name] - value) < 1e-9, name
    assert ours["mAP"] == ours["AP"]
    # per class: pycocotools evaluating that category alone
    for c in CATEGORY_IDS:
        assert abs(ours["per_class"]["c%d" % c] - run_pycocotools(gt_file, res_file, [c])[0]) < 1e-9


def test_results_json_round_trips(tmp_path, random_set):
    images, metric, ours = random_set
    gt_file, _, reference = write_reference_files(tmp_path, images)
    path = str(tmp_path / "ours.json")
    written = metric.results_json(path)
    with open(path) as f:
        assert json.load(f) == written == reference  # ids mapped, boxes x, y, w, h
    assert {r["category_id"] for r in written} == set(CATEGORY_IDS)
    assert {r["image_id"] for r in written} <= set(image_ids())
    stats = run_pycocotools(gt_file, path)  # loadRes accepts it
    assert [ours[name] for name in STAT_NAMES] == pytest.approx(list(stats), abs=1e-9)
    # another mapping, given to results_json
    other = metric.results_json(path, category_ids=[3, 2, 1])
    remap = {1: 3, 5: 2, 18: 1}
    assert [r["category_id"] for r in other] == [remap[r["category_id"]] for r in written]


# -- padding and batching ----------------------------------------------------------------


def test_padding_and_batch_splits_change_nothing(random_set):
    images, _, ours = random_set
    split = COCOMetric(class_names=["c%d" % c for c in CATEGORY_IDS], category_ids=CATEGORY_IDS)
    split.update(*batch(images[:7]), image_ids=image_ids()[:7])
    # a list of two batches of different widths, in one call
    first, second = batch(images[7:12], pad_dets=5), batch(images[12:], pad_gts=4)
    split.update(*[[a, b] for a, b in zip(first, second)], image_ids=image_ids()[7:])
    assert split.get_dict() == ours


def test_default_image_ids_run_over_updates():
    images = random_images(seed=1)
    one = COCOMetric()
    one.update(*batch(images))
    parts = COCOMetric()
    parts.update(*batch(images[:3]))
    parts.update(*batch(images[3:], pad_dets=2))
    assert [r["image_id"] for r in parts.results()] == [r["image_id"] for r in one.results()]
    assert {r["image_id"] for r in one.results()} <= set(range(N_IMAGES))
    assert parts.get_dict() == one.get_dict()
