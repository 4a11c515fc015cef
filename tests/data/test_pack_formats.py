"""The other packing formats, on the sample and on crafted inputs: COCO JSON (data/pack_coco.py)
and plain folders of images + VOC XML (data/pack_folder.py). Each packs the sample into what
the VOC packer writes (up to COCO's box convention), and bad input is one line per item."""

import contextlib
import io
import json
import os
import shutil

import cv2
import mxnet as mx
import numpy as np
import pytest

from ssd_gluon.data.classes import SAMPLE_CLASSES
from ssd_gluon.data.records import FLAG_CROWD, FLAG_DIFFICULT, HEADER_WIDTH, trainable
from ssd_gluon.data.synthetic import SAMPLE_CATEGORY_IDS
from ssd_gluon.data.verify import open_records
from ssd_gluon.evaluation.coco_map import STAT_NAMES

from conftest import assert_one_line_error, run_cli


def pack_coco(sample_dir, split, out, *extra):
    return run_cli(
        "data/pack_coco.py",
        "--json",
        str(sample_dir / "coco" / ("instances_%s.json" % split)),
        "--images",
        str(sample_dir / "VOCsample" / "JPEGImages"),
        "--out",
        str(out),
        "--workers",
        "0",
        "--no-progress",
        *extra,
    )


def labels(rec):
    """Each record's float32 label and header id2, in file order."""
    reader = mx.recordio.MXIndexedRecordIO(rec[:-4] + ".idx", rec, "r")
    out = []
    for key in reader.keys:
        header, _ = mx.recordio.unpack(reader.read_idx(key))
        out.append((np.asarray(header.label, np.float32), header.id2))
    reader.close()
    return out


@pytest.fixture(scope="module")
def coco_packs(sample_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("coco")
    for split, flag in (("train", "train"), ("test", "val")):
        proc = pack_coco(sample_dir, split, out / split, "--split", flag)
        assert proc.returncode == 0, proc.stderr[-2000:]
        assert "packed %d images" % (96 if split == "train" else 32) in proc.stdout
    return out


def test_coco_pack_of_the_sample_matches_the_voc_pack(sample_dir, coco_packs):
    coco = labels(str(coco_packs / "test.rec"))  # --split val: the JSON's (= VOC's) order
    voc = labels(str(sample_dir / "test.rec"))
    assert len(coco) == len(voc) == 32
    for (c, image_id), (v, _) in zip(coco, voc):
        assert image_id > 0  # the COCO image id, in the header
        np.testing.assert_array_equal(c[:HEADER_WIDTH], v[:HEADER_WIDTH])
        c, v = c[HEADER_WIDTH:].reshape(-1, 6), v[HEADER_WIDTH:].reshape(-1, 6)
        np.testing.assert_array_equal(c[:, 0], v[:, 0])
        np.testing.assert_allclose(c[:, 1:3], v[:, 1:3], atol=1e-6)  # min corners: the same
        # max corners: COCO's x + w is VOC's last pixel + 1 (one pixel right/below)
        assert np.all(c[:, 3:5] >= v[:, 3:5]) and np.all(c[:, 3:5] - v[:, 3:5] < 1 / 64 + 1e-6)
        np.testing.assert_array_equal(c[:, 5] == FLAG_CROWD, v[:, 5] == FLAG_DIFFICULT)
    records = open_records(str(coco_packs / "test.rec"))
    assert records.classes == list(SAMPLE_CLASSES)
    assert records.category_ids == list(SAMPLE_CATEGORY_IDS)
    test_json = json.load(open(sample_dir / "coco" / "instances_test.json"))
    assert records.image_ids == [im["id"] for im in test_json["images"]]
    # the training split is shuffled (seeded): the same records in another order, and
    # packing again writes the same bytes
    train = labels(str(coco_packs / "train.rec"))
    assert sorted(i for _, i in train) == list(range(1, 97)) and [i for _, i in train] != list(
        range(1, 97)
    )


def test_coco_repack_is_identical(sample_dir, coco_packs, tmp_path):
    proc = pack_coco(sample_dir, "train", tmp_path / "again")
    assert proc.returncode == 0, proc.stderr[-2000:]
    for suffix in (".rec", ".idx", ".lst", ".classes.txt", ".categories.txt"):
        assert (tmp_path / ("again" + suffix)).read_bytes() == (
            coco_packs / ("train" + suffix)
        ).read_bytes(), suffix


def test_folder_pack_of_the_sample_equals_the_voc_pack(sample_dir, tmp_path):
    voc = sample_dir / "VOCsample"
    proc = run_cli(
        "data/pack_folder.py",
        "--folder",
        str(voc / "JPEGImages"),
        "--annotations",
        "../Annotations",
        "--train-list",
        str(voc / "ImageSets" / "Main" / "train.txt"),
        "--val-list",
        str(voc / "ImageSets" / "Main" / "test.txt"),
        "--out-dir",
        str(tmp_path / "f"),
        "--workers",
        "0",
        "--no-progress",
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "classes found in the annotations: circle,cross,rectangle,triangle" in proc.stdout
    # auto classes are sorted by name; the VOC pack has the sample's order
    assert (tmp_path / "f" / "val.classes.txt").read_text().split() == sorted(SAMPLE_CLASSES)
    order = [sorted(SAMPLE_CLASSES).index(c) for c in SAMPLE_CLASSES]
    folder, reference = (
        labels(str(tmp_path / "f" / "val.rec")),
        labels(str(sample_dir / "test.rec")),
    )
    assert len(folder) == len(reference) == 32
    for (f, _), (r, _) in zip(folder, reference):
        r = r.copy()
        r[HEADER_WIDTH::6] = [order[int(c)] for c in r[HEADER_WIDTH::6]]
        np.testing.assert_array_equal(f, r)


def _write_xml(path, size, objects):
    parts = ["<annotation><size><width>%d</width><height>%d</height></size>" % size]
    for name, (x1, y1, x2, y2) in objects:
        parts.append(
            "<object><name>%s</name><bndbox><xmin>%d</xmin><ymin>%d</ymin><xmax>%d</xmax>"
            "<ymax>%d</ymax></bndbox></object>" % (name, x1, y1, x2, y2)
        )
    path.write_text("".join(parts) + "</annotation>")


def test_folder_of_mixed_images_beside_their_xml(tmp_path):
    """LabelImg's layout: NAME.xml beside each image, formats OpenCV reads, 16-bit and
    alpha converted; a broken XML and an orphan XML are one line each, the rest packed."""
    folder = tmp_path / "photos"
    folder.mkdir()
    rng = np.random.RandomState(0)
    images = {
        "a.png": (rng.rand(40, 60, 3) * 65535).astype(np.uint16),  # 16-bit
        "b.png": (rng.rand(40, 60, 4) * 255).astype(np.uint8),  # with alpha
        "c.tiff": (rng.rand(40, 60) * 255).astype(np.uint8),  # grey
        "d.jpg": (rng.rand(40, 60, 3) * 255).astype(np.uint8),
        "e.bmp": (rng.rand(40, 60, 3) * 255).astype(np.uint8),
    }
    for name, img in images.items():
        assert cv2.imwrite(str(folder / name), img)
        stem = os.path.splitext(name)[0]
        _write_xml(
            folder / (stem + ".xml"), (60, 40), [("dog", (5, 5, 30, 30)), ("cat", (20, 10, 55, 38))]
        )
    (folder / "e.xml").write_text("<annotation><size>")  # broken
    _write_xml(folder / "orphan.xml", (60, 40), [("dog", (1, 1, 9, 9))])
    proc = run_cli(
        "data/pack_folder.py",
        "--folder",
        str(folder),
        "--val-fraction",
        "0.25",
        "--out-dir",
        str(tmp_path / "out"),
        "--workers",
        "0",
        "--no-progress",
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "classes found in the annotations: cat,dog" in proc.stdout
    err = proc.stderr.strip().splitlines()
    assert any(
        line.startswith(str(folder / "orphan.xml") + ": no image of that name") for line in err
    )
    assert any(line.startswith(str(folder / "e.xml") + ": malformed XML") for line in err)
    train, val = (open_records(str(tmp_path / "out" / (s + ".rec"))) for s in ("train", "val"))
    assert val.count == 1 and train.count == 3  # 5 images, 1 held out, the broken one skipped
    assert train.classes == ["cat", "dog"]
    # the 16-bit, alpha and grey images decode to 8-bit colour JPEGs of the right size
    reader = mx.recordio.MXIndexedRecordIO(train.path[:-4] + ".idx", train.path, "r")
    for key in reader.keys:
        _, img = mx.recordio.unpack_img(reader.read_idx(key))
        assert img.shape == (40, 60, 3) and img.dtype == np.uint8
    reader.close()


def _coco(tmp_path, sample_dir, change):
    """The sample's test JSON with ``change(data)`` applied, written to tmp_path."""
    data = json.load(open(sample_dir / "coco" / "instances_test.json"))
    change(data)
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data))
    return path


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda d: d.pop("annotations"), "not a COCO instances file: no 'annotations' list"),
        (
            lambda d: d["categories"].append(dict(d["categories"][0], name="x")),
            "category id 1 appears twice",
        ),
        (lambda d: d["images"].append(dict(d["images"][0])), "appears twice"),
        (lambda d: d["images"][0].update(width="wide"), "images[0]: 'width' is not an integer"),
        (lambda d: d["annotations"][0].update(bbox=[1, 2]), "'bbox' is not a list of 4 numbers"),
    ],
)
def test_coco_file_problems_are_one_line(sample_dir, tmp_path, change, message):
    bad = _coco(tmp_path, sample_dir, change)
    proc = run_cli(
        "data/pack_coco.py",
        "--json",
        str(bad),
        "--images",
        str(sample_dir / "VOCsample" / "JPEGImages"),
        "--out",
        str(tmp_path / "o"),
    )
    assert_one_line_error(proc, str(bad), message)
    assert not list(tmp_path.glob("o.*"))


def test_coco_item_problems_are_one_line_each_and_the_rest_packed(sample_dir, tmp_path):
    images = tmp_path / "images"
    shutil.copytree(sample_dir / "VOCsample" / "JPEGImages", images)

    def change(data):
        data["annotations"][0]["image_id"] = 999999  # an absent image
        data["annotations"][1]["category_id"] = 77  # an absent category
        data["annotations"][2]["bbox"][2] = 0  # no width
        (images / data["images"][3]["file_name"]).write_bytes(b"not a jpeg")
        os.remove(images / data["images"][4]["file_name"])

    bad = _coco(tmp_path, sample_dir, change)
    proc = run_cli(
        "data/pack_coco.py",
        "--json",
        str(bad),
        "--images",
        str(images),
        "--out",
        str(tmp_path / "o"),
        "--split",
        "val",
        "--workers",
        "0",
        "--no-progress",
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    err = proc.stderr.strip().splitlines()
    assert "annotations[0] (id 1) refers to image 999999, not in 'images'; left out" in err[0]
    assert "annotations[1] (id 2) has category 77, not in 'categories'; left out" in err[1]
    assert any("cannot decode image" in line for line in err)
    assert any("image file not found" in line for line in err)
    assert any("0 box(es) clipped to the image, 1 dropped" in line for line in err)
    assert "packed 30 images" in proc.stdout
    assert open_records(str(tmp_path / "o.rec")).count == 30
    strict = run_cli(
        "data/pack_coco.py",
        "--json",
        str(bad),
        "--images",
        str(images),
        "--out",
        str(tmp_path / "s"),
        "--strict",
    )
    assert_one_line_error(strict, "refers to image 999999")
    assert not list(tmp_path.glob("s.*"))


def test_train_and_evaluate_on_coco_records_with_both_metrics(sample_dir, coco_packs, tmp_path):
    """A few steps on the COCO pack with COCO AP as the validation metric, then the
    evaluation script: its COCO figures are pycocotools' own on the sample's JSON and the
    written detections (image and category ids mapped back), and the VOC metric runs too."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    run = tmp_path / "run"
    proc = run_cli(
        "scripts/train.py",
        "--model",
        "ssd_demo",
        "--train",
        str(coco_packs / "train.rec"),
        "--val",
        str(coco_packs / "test.rec"),
        "--val-metric",
        "coco",
        "--epochs",
        "2",
        "--batch-size",
        "16",
        "--threads",
        "1",
        "--ops",
        "builtin",
        "--out",
        str(run),
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "validation AP" in proc.stdout
    val = [json.loads(line) for line in open(run / "metrics.jsonl") if '"val"' in line]
    assert val and all(0 <= v["mAP"] <= 1 for v in val)
    out = tmp_path / "eval.json"
    evaluate = ["scripts/eval_voc.py", "--model", "ssd_demo", "--params", str(run / "final.params")]
    evaluate += ["--rec", str(coco_packs / "test.rec"), "--speed-repeats", "0"]
    proc = run_cli(*evaluate, "--metric", "coco", "--out", str(out))
    assert proc.returncode == 0, proc.stderr[-2000:]
    ours = json.loads(out.read_text())
    detections = json.loads((tmp_path / "eval.detections.json").read_text())
    assert detections and {d["category_id"] for d in detections} <= set(SAMPLE_CATEGORY_IDS)
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(sample_dir / "coco" / "instances_test.json"))
        check = COCOeval(gt, gt.loadRes(str(tmp_path / "eval.detections.json")), "bbox")
        check.evaluate()
        check.accumulate()
        check.summarize()
    for name, value in zip(STAT_NAMES, check.stats):
        assert ours[name] == pytest.approx(value, abs=1e-9), name
    proc = run_cli(*evaluate, "--metric", "voc07")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "(voc07, 32 images" in proc.stdout


def test_crowd_regions_are_not_trained_on():
    objects = mx.nd.array(
        [
            [
                [0, 0.1, 0.1, 0.5, 0.5, 0],
                [1, 0.1, 0.1, 0.5, 0.5, FLAG_CROWD],
                [2, 0.2, 0.2, 0.6, 0.6, 1],
            ],
            [[3, 0.1, 0.1, 0.5, 0.5, FLAG_CROWD], [-1] * 6, [-1] * 6],
        ]
    )
    got = trainable(objects).asnumpy()
    # the crowd row becomes padding, after the others (MultiBoxTarget needs padding last)
    np.testing.assert_array_equal(got[0, :2], objects.asnumpy()[0, [0, 2]])
    assert (got[0, 2] == -1).all() and (got[1] == -1).all()
    voc = mx.nd.array(objects.asnumpy()[:1, [0, 2]])  # difficult and plain objects
    assert (trainable(voc) == voc).asnumpy().all()  # no crowd: unchanged
