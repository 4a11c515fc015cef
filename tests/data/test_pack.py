"""Tests for the VOC -> RecordIO packer (ssd_gluon/packing/voc.py and its command line,
data/pack_voc.py)."""

import os
import subprocess
import sys
from pathlib import Path

import cv2
import mxnet as mx
import numpy as np
import pytest

from ssd_gluon.data.classes import VOC_CLASSES
from ssd_gluon.packing import common as packing
from ssd_gluon.packing.voc import PackError, pack_voc, parse_annotation, read_image_set

from conftest import assert_one_line_error, limit_file_size, run_cli

REPO = Path(__file__).resolve().parents[2]
CLI = REPO / "data" / "pack_voc.py"
OUTPUTS = (".rec", ".idx", ".lst", ".classes.txt")


# ----------------------------------------------------------------------------- fixtures
def write_voc(root, items, year="sample", split="train"):
    """Write a VOC tree ``root/VOC<year>`` and its set file; return the image ids.

    ``items``: dicts with ``id``, ``size`` (w, h), ``objects`` [(name, x1, y1, x2, y2, diff)],
    optionally ``xml`` (raw text replacing the generated XML) and ``image=False`` (no JPEG).
    """
    base = Path(root, f"VOC{year}")
    for sub in ("JPEGImages", "Annotations", "ImageSets/Main"):
        (base / sub).mkdir(parents=True, exist_ok=True)
    for num, item in enumerate(items):
        w, h = item["size"]
        if item.get("image", True):
            img = np.random.RandomState(num).randint(0, 256, (h, w, 3)).astype(np.uint8)
            cv2.imwrite(str(base / "JPEGImages" / f"{item['id']}.jpg"), img)
        xml = item.get("xml") or voc_xml(w, h, item["objects"])
        (base / "Annotations" / f"{item['id']}.xml").write_text(xml)
    ids = [item["id"] for item in items]
    (base / "ImageSets" / "Main" / f"{split}.txt").write_text("".join(f"{i}\n" for i in ids))
    return ids


def voc_xml(w, h, objects):
    objs = "".join(
        f"<object><name>{name}</name><pose>Left</pose><truncated>0</truncated>"
        f"<difficult>{diff}</difficult><bndbox><xmin>{x1}</xmin><ymin>{y1}</ymin>"
        f"<xmax>{x2}</xmax><ymax>{y2}</ymax></bndbox></object>\n"
        for name, x1, y1, x2, y2, diff in objects
    )
    return (
        f"<annotation>\n<folder>VOC</folder>\n<size><width>{w}</width><height>{h}</height>"
        f"<depth>3</depth></size>\n{objs}</annotation>\n"
    )


def expected_rows(item, class_names=VOC_CLASSES):
    """The normalized (K, 6) rows the packer should store for an item without clipping."""
    w, h = item["size"]
    return np.array(
        [
            [class_names.index(n), (x1 - 1) / w, (y1 - 1) / h, (x2 - 1) / w, (y2 - 1) / h, d]
            for n, x1, y1, x2, y2, d in item["objects"]
        ],
        np.float32,
    )


GOOD = [
    {"id": "000001", "size": (48, 32), "objects": [("dog", 1, 1, 48, 32, 0)]},
    {
        "id": "000002",
        "size": (40, 50),
        "objects": [("person", 5, 7, 30, 41, 1), ("car", 2, 3, 20, 10, 0)],
    },
    {
        "id": "000003",
        "size": (64, 48),
        "objects": [
            ("tvmonitor", 10, 11, 60, 40, 0),
            ("aeroplane", 3, 4, 9, 8, 1),
            ("dog", 20, 2, 33, 47, 0),
        ],
    },
]


@pytest.fixture
def good_tree(tmp_path):
    root = tmp_path / "VOCdevkit"
    write_voc(root, GOOD)
    return root


def output_files(prefix):
    """Names of all files in the output directory of ``prefix`` ([] if it does not exist)."""
    out_dir = Path(prefix).parent
    return sorted(p.name for p in out_dir.iterdir()) if out_dir.exists() else []


def assert_no_tmp(*dirs):
    for d in dirs:
        leftovers = [p for p in Path(d).rglob("*") if ".tmp-" in p.name]
        assert not leftovers, leftovers


def read_records(prefix):
    rec = mx.recordio.MXIndexedRecordIO(f"{prefix}.idx", f"{prefix}.rec", "r")
    try:
        return [(key, rec.read_idx(key)) for key in sorted(rec.keys)]
    finally:
        rec.close()


def pack(root, prefix, **kwargs):
    kwargs.setdefault("num_workers", 0)
    kwargs.setdefault("progress", False)
    return pack_voc(root, ["sample-train"], str(prefix), **kwargs)


def pack_cli(*argv):
    """Run data/pack_voc.py with ``argv``; returns the CompletedProcess."""
    return run_cli(str(CLI), *map(str, argv), timeout=600)


# ----------------------------------------------------------------------------- round trip
def test_label_round_trip(good_tree, tmp_path):
    prefix = tmp_path / "out" / "train"
    summary = pack(good_tree, prefix)

    assert output_files(prefix) == sorted(f"train{s}" for s in OUTPUTS)
    assert summary.images == 3 and summary.skipped == []
    assert summary.objects["dog"] == 2 and summary.objects["person"] == 1
    assert sum(summary.objects.values()) == 6 and summary.difficult == 2
    assert summary.clipped == 0 and summary.dropped == 0
    assert summary.outputs[".rec"] == f"{prefix}.rec"

    records = read_records(prefix)
    assert [key for key, _ in records] == [0, 1, 2]
    for (key, raw), item in zip(records, GOOD):
        header, img = mx.recordio.unpack_img(raw)
        w, h = item["size"]
        rows = expected_rows(item)
        assert header.id == key and header.flag == 4 + 6 * len(rows)
        np.testing.assert_array_equal(header.label[:4], [4, 6, w, h])
        np.testing.assert_array_equal(header.label[4:].reshape(-1, 6), rows)
        assert header.label.dtype == np.float32 and img.shape == (h, w, 3)
        # byte-exact: the record is pack_img of the decoded source image at quality 95
        src = cv2.imread(str(good_tree / "VOCsample" / "JPEGImages" / f"{item['id']}.jpg"))
        ref = mx.recordio.pack_img(
            mx.recordio.IRHeader(0, header.label, key, 0), src, quality=95, img_fmt=".jpg"
        )
        assert raw == ref

    lines = Path(f"{prefix}.lst").read_text().splitlines()
    assert len(lines) == 3
    for (key, raw), line, item in zip(records, lines, GOOD):
        fields = line.split("\t")
        assert fields[0] == str(key)
        assert fields[-1] == f"VOCsample/JPEGImages/{item['id']}.jpg"
        label = mx.recordio.unpack(raw)[0].label
        np.testing.assert_array_equal(np.array(fields[1:-1], np.float32), label)
    assert lines[0].split("\t")[1:5] == ["4", "6", "48", "32"]
    assert Path(f"{prefix}.classes.txt").read_text() == "".join(f"{c}\n" for c in VOC_CLASSES)
    assert_no_tmp(tmp_path)


def test_image_det_record_iter_reads_records(good_tree, tmp_path):
    prefix = tmp_path / "train"
    pack(good_tree, prefix)
    pad_width = 4 + 4 + 6 * 3 + 2
    it = mx.io.ImageDetRecordIter(
        path_imgrec=f"{prefix}.rec",
        path_imgidx=f"{prefix}.idx",
        batch_size=2,
        data_shape=(3, 64, 64),
        label_pad_width=pad_width,
        shuffle=False,
    )
    rows = []
    for batch in it:
        assert batch.data[0].shape == (2, 3, 64, 64)
        labels = batch.label[0].asnumpy()
        rows += list(labels[: labels.shape[0] - batch.pad])
    assert len(rows) == 3
    for row, item in zip(rows, GOOD):
        packed = row[4:]  # the iterator puts its own 4 values first
        k = len(item["objects"])
        np.testing.assert_array_equal(packed[:4], [4, 6, *item["size"]])
        np.testing.assert_allclose(packed[4 : 4 + 6 * k].reshape(k, 6), expected_rows(item))
        assert np.all(packed[4 + 6 * k :] == -1)


def test_packing_twice_is_byte_identical(good_tree, tmp_path):
    first = pack(good_tree, tmp_path / "a" / "train", num_workers=0)
    second = pack(good_tree, tmp_path / "b" / "train", num_workers=2)
    assert first.images == second.images == 3
    for suffix in OUTPUTS:
        a = (tmp_path / "a" / f"train{suffix}").read_bytes()
        b = (tmp_path / "b" / f"train{suffix}").read_bytes()
        assert a == b, suffix
    assert_no_tmp(tmp_path)


def test_sets_are_packed_in_order(tmp_path):
    root = tmp_path / "VOCdevkit"
    write_voc(root, GOOD[:1], year="2007", split="trainval")
    write_voc(root, GOOD[1:], year="2012", split="trainval")
    prefix = tmp_path / "both"
    summary = pack_voc(
        root, ["2007-trainval", "2012-trainval"], str(prefix), num_workers=0, progress=False
    )
    assert summary.images == 3
    paths = [line.split("\t")[-1] for line in Path(f"{prefix}.lst").read_text().splitlines()]
    assert paths == [
        "VOC2007/JPEGImages/000001.jpg",
        "VOC2012/JPEGImages/000002.jpg",
        "VOC2012/JPEGImages/000003.jpg",
    ]


# ----------------------------------------------------------------------------- bad items
TRUNCATED = "<annotation><size><width>40</width><height>30</height></size><object><name>do"


def broken_tree(tmp_path):
    root = tmp_path / "VOCdevkit"
    write_voc(
        root, GOOD[:2] + [{"id": "broken", "size": (40, 30), "objects": [], "xml": TRUNCATED}]
    )
    return root, root / "VOCsample" / "Annotations" / "broken.xml"


def test_truncated_xml_is_skipped_with_one_line(tmp_path, capsys):
    root, bad_xml = broken_tree(tmp_path)
    summary = pack(root, tmp_path / "out" / "train")
    err_lines = capsys.readouterr().err.strip().splitlines()
    assert len(err_lines) == 1 and str(bad_xml) in err_lines[0]
    assert "malformed XML" in err_lines[0]
    assert summary.images == 2
    assert [(s.path, s.reason) for s in summary.skipped] == [(str(bad_xml), "broken annotation")]
    assert len(read_records(tmp_path / "out" / "train")) == 2
    assert_no_tmp(tmp_path)


def test_truncated_xml_strict_raises_and_leaves_nothing(tmp_path):
    root, bad_xml = broken_tree(tmp_path)
    prefix = tmp_path / "out" / "train"
    with pytest.raises(PackError) as info:
        pack(root, prefix, strict=True, num_workers=2)
    assert str(bad_xml) in str(info.value) and "\n" not in str(info.value)
    assert output_files(prefix) == []
    assert_no_tmp(tmp_path)


def test_cli_strict_error_exits_1_without_partial_output(tmp_path):
    root, bad_xml = broken_tree(tmp_path)
    prefix = tmp_path / "out" / "train"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run(
        [
            sys.executable,
            str(CLI),
            "--voc-root",
            str(root),
            "--sets",
            "sample-train",
            "--out",
            str(prefix),
            "--strict",
            "--workers",
            "0",
            "--no-progress",
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 1, proc.stderr
    err = proc.stderr.strip()
    assert err.startswith("error: ") and str(bad_xml) in err
    assert len(err.splitlines()) == 1 and "Traceback" not in proc.stderr
    assert proc.stdout == ""
    assert output_files(prefix) == []
    assert_no_tmp(tmp_path)


def missing_and_alien_tree(tmp_path):
    """000001 (good), nojpeg (no JPEG), alien (a dog and a 'unicorn'), ghost (no files)."""
    root = tmp_path / "VOCdevkit"
    write_voc(
        root,
        GOOD[:1]
        + [
            {
                "id": "nojpeg",
                "size": (40, 30),
                "objects": [("dog", 2, 2, 20, 20, 0)],
                "image": False,
            },
            {
                "id": "alien",
                "size": (40, 30),
                "objects": [("dog", 2, 2, 20, 20, 0), ("unicorn", 3, 3, 9, 9, 0)],
            },
        ],
    )
    (root / "VOCsample" / "ImageSets" / "Main" / "train.txt").write_text(
        "000001\nnojpeg\nalien\nghost\n"
    )  # 'ghost' is listed but has no files at all
    return root


def test_missing_jpeg_and_unknown_class_skip(tmp_path, capsys):
    # other_classes="skip" is the old default: the image with a 'unicorn' is a skipped item
    root = missing_and_alien_tree(tmp_path)
    summary = pack(root, tmp_path / "out" / "train", other_classes="skip")
    err = capsys.readouterr().err.strip().splitlines()
    ann, jpg = root / "VOCsample" / "Annotations", root / "VOCsample" / "JPEGImages"
    assert err == [
        f"{jpg / 'nojpeg.jpg'}: image file not found",
        f"{ann / 'alien.xml'}: unknown class 'unicorn' (object 1)",
        f"{ann / 'ghost.xml'}: annotation file not found",
    ]
    assert summary.images == 1
    assert summary.skipped_by_reason() == {
        "missing image": 1,
        "unknown class": 1,
        "missing annotation": 1,
    }
    assert summary.ignored_objects == {}
    text = summary.format()
    assert "skipped images: 3" in text and "unknown class: 1" in text
    # each skip was printed once on stderr; the summary counts them but does not repeat them
    assert not any(line in text for line in err)
    assert "not in the list" not in text
    listed = summary.format(max_items=1).splitlines()
    assert listed[-2:] == [f"  {err[0]}", "  ... and 2 more"]
    with pytest.raises(PackError, match="nojpeg.jpg: image file not found"):
        pack(root, tmp_path / "strict" / "train", strict=True, other_classes="skip")
    assert output_files(tmp_path / "strict" / "train") == []
    assert_no_tmp(tmp_path)


def test_missing_jpeg_and_unknown_class_default_drops_the_object(tmp_path, capsys):
    root = missing_and_alien_tree(tmp_path)
    prefix = tmp_path / "out" / "train"
    summary = pack(root, prefix)
    err = capsys.readouterr().err.strip().splitlines()
    ann, jpg = root / "VOCsample" / "Annotations", root / "VOCsample" / "JPEGImages"
    assert err == [
        f"{jpg / 'nojpeg.jpg'}: image file not found",
        f"{ann / 'ghost.xml'}: annotation file not found",
    ]
    assert summary.images == 2 and summary.objects["dog"] == 2
    assert summary.ignored_objects == {"unicorn": 1}
    assert summary.skipped_by_reason() == {"missing image": 1, "missing annotation": 1}
    text = summary.format()
    assert "skipped images: 2" in text
    assert "objects of classes not in the list, dropped: unicorn 1" in text.splitlines()
    (_, first), (_, alien) = read_records(prefix)
    np.testing.assert_array_equal(
        mx.recordio.unpack(alien)[0].label[4:].reshape(-1, 6),
        np.float32([[VOC_CLASSES.index("dog"), 1 / 40, 1 / 30, 19 / 40, 19 / 30, 0]]),
    )
    # --strict still stops at the first bad item, here the missing JPEG before the unicorn
    with pytest.raises(PackError, match="nojpeg.jpg: image file not found"):
        pack(root, tmp_path / "strict" / "train", strict=True)
    assert output_files(tmp_path / "strict" / "train") == []
    assert_no_tmp(tmp_path)


# ----------------------------------------------------------------------------- class subsets
SUBSET = ("dog", "person")  # GOOD also holds car, tvmonitor, aeroplane
ONLY_CATS = {"id": "cats", "size": (40, 30), "objects": [("cat", 2, 2, 9, 9, 0)] * 2}


def subset_tree(tmp_path):
    root = tmp_path / "VOCdevkit"
    write_voc(root, GOOD + [ONLY_CATS])
    return root


def kept_rows(item, class_names):
    """expected_rows of ``item`` restricted to ``class_names`` (re-indexed)."""
    kept = [o for o in item["objects"] if o[0] in class_names]
    return expected_rows(dict(item, objects=kept), class_names)


@pytest.mark.parametrize("workers", [0, 2])
def test_class_subset_keeps_images_and_drops_other_objects(tmp_path, capsys, workers):
    root = subset_tree(tmp_path)
    prefix = tmp_path / "out" / "train"
    summary = pack(root, prefix, class_names=SUBSET, num_workers=workers)

    # every GOOD image holds a dog or a person: all kept, with only those objects
    assert summary.images == 3
    assert summary.objects == {"dog": 2, "person": 1} and summary.difficult == 1
    assert summary.ignored_objects == {"car": 1, "tvmonitor": 1, "aeroplane": 1, "cat": 2}
    records = read_records(prefix)
    assert len(records) == 3
    for (_, raw), item in zip(records, GOOD):
        label = mx.recordio.unpack(raw)[0].label
        rows = label[4:].reshape(-1, 6)
        assert set(rows[:, 0].astype(int)) <= {0, 1}  # dog = 0, person = 1
        np.testing.assert_array_equal(rows, kept_rows(item, SUBSET))
        assert label[2:4].tolist() == list(item["size"])
    assert Path(f"{prefix}.classes.txt").read_text() == "dog\nperson\n"

    # the image left with nothing is skipped, reported exactly once
    cats_xml = root / "VOCsample" / "Annotations" / "cats.xml"
    message = f"{cats_xml}: no usable objects (only classes not in the list: cat 2)"
    assert capsys.readouterr().err.strip().splitlines() == [message]
    assert [(s.path, s.reason, s.message) for s in summary.skipped] == [
        (str(cats_xml), "no usable objects", message)
    ]
    text = summary.format().splitlines()
    assert (
        "objects of classes not in the list, dropped: cat 2, aeroplane 1, car 1, tvmonitor 1"
        in text
    )
    assert "skipped images: 1 (no usable objects: 1)" in text and message not in "\n".join(text)
    assert_no_tmp(tmp_path)


def test_class_subset_skip_leaves_out_images_with_other_classes(tmp_path, capsys):
    root = subset_tree(tmp_path)
    prefix = tmp_path / "out" / "train"
    for strict in (False, True):  # a chosen filter, not a bad item: --strict does not stop it
        summary = pack(root, prefix, class_names=SUBSET, other_classes="skip", strict=strict)
        ann = root / "VOCsample" / "Annotations"
        expected = [
            f"{ann / '000002.xml'}: unknown class 'car' (object 1)",
            f"{ann / '000003.xml'}: unknown class 'tvmonitor' (object 0)",
            f"{ann / 'cats.xml'}: unknown class 'cat' (object 0)",
        ]
        assert capsys.readouterr().err.strip().splitlines() == expected
        assert summary.images == 1 and summary.objects == {"dog": 1, "person": 0}
        assert summary.ignored_objects == {}
        assert [s.message for s in summary.skipped] == expected
        assert summary.skipped_by_reason() == {"unknown class": 3}
        ((_, raw),) = read_records(prefix)
        np.testing.assert_array_equal(
            mx.recordio.unpack(raw)[0].label[4:].reshape(-1, 6), kept_rows(GOOD[0], SUBSET)
        )


@pytest.mark.parametrize(
    "kwargs",
    [dict(other_classes="error"), dict(strict=True), dict(other_classes="error", strict=True)],
)
def test_class_subset_error_stops_at_the_first_other_class(tmp_path, capsys, kwargs):
    root = subset_tree(tmp_path)
    prefix = tmp_path / "out" / "train"
    with pytest.raises(PackError) as info:
        pack(root, prefix, class_names=SUBSET, **kwargs)
    xml = root / "VOCsample" / "Annotations" / "000002.xml"
    assert str(info.value) == f"{xml}: unknown class 'car' (object 1)"
    assert info.value.kind == "unknown class"
    assert capsys.readouterr().err == ""
    assert output_files(prefix) == []
    assert_no_tmp(tmp_path)


def test_strict_with_explicit_drop_packs_the_subset(tmp_path):
    root = subset_tree(tmp_path)
    summary = pack(root, tmp_path / "train", class_names=SUBSET, strict=True, other_classes="drop")
    assert summary.images == 3 and summary.ignored_objects["cat"] == 2


def test_bad_other_classes_value(good_tree, tmp_path):
    with pytest.raises(ValueError, match="other_classes must be one of drop, skip, error"):
        pack(good_tree, tmp_path / "train", other_classes="keep")
    assert not (tmp_path / "train.rec").exists()


def test_unreadable_jpeg_and_size_mismatch(tmp_path, capsys):
    root = tmp_path / "VOCdevkit"
    write_voc(
        root,
        GOOD[:1]
        + [
            {"id": "garbage", "size": (40, 30), "objects": [("dog", 2, 2, 20, 20, 0)]},
            {"id": "wrongsize", "size": (40, 30), "objects": [("dog", 2, 2, 20, 20, 0)]},
        ],
    )
    jpg = root / "VOCsample" / "JPEGImages"
    (jpg / "garbage.jpg").write_bytes(b"not a jpeg at all")
    cv2.imwrite(str(jpg / "wrongsize.jpg"), np.zeros((10, 10, 3), np.uint8))
    summary = pack(root, tmp_path / "out" / "train")
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        f"{jpg / 'garbage.jpg'}: cannot decode image",
        f"{jpg / 'wrongsize.jpg'}: image is 10x10 but the annotation says 40x30",
    ]
    assert summary.images == 1


def test_clipping_and_zero_area(tmp_path):
    root = tmp_path / "VOCdevkit"
    write_voc(
        root,
        [
            {
                "id": "a",
                "size": (40, 20),
                "objects": [
                    ("dog", -5, 3, 50, 30, 0),  # outside on three sides -> clipped
                    ("cat", 10, 5, 10, 15, 0),  # zero width -> dropped
                    ("bird", 5, 5, 15, 10, 1),
                ],
            },  # fine
            {"id": "b", "size": (40, 20), "objects": [("cow", 50, 2, 60, 9, 0)]},
        ],
    )  # all outside
    prefix = tmp_path / "train"
    summary = pack(root, prefix)
    assert summary.images == 1 and summary.clipped == 1 and summary.dropped == 2
    assert [(s.path, s.reason) for s in summary.skipped] == [
        (str(root / "VOCsample" / "Annotations" / "b.xml"), "no usable objects")
    ]
    ((_, raw),) = read_records(prefix)
    rows = mx.recordio.unpack(raw)[0].label[4:].reshape(-1, 6)
    np.testing.assert_array_equal(
        rows,
        np.array(
            [
                [VOC_CLASSES.index("dog"), 0, 2 / 20, 1, 1, 0],
                [VOC_CLASSES.index("bird"), 4 / 40, 4 / 20, 14 / 40, 9 / 20, 1],
            ],
            np.float32,
        ),
    )

    ann = parse_annotation(str(root / "VOCsample" / "Annotations" / "a.xml"), VOC_CLASSES)
    assert (ann.width, ann.height, ann.clipped, ann.dropped) == (40, 20, 1, 1)
    assert ann.objects.shape == (2, 6) and ann.objects.dtype == np.float32


def test_all_images_skipped_is_an_error(tmp_path):
    root = tmp_path / "VOCdevkit"
    write_voc(root, [{"id": "b", "size": (40, 20), "objects": [("cow", 50, 2, 60, 9, 0)]}])
    with pytest.raises(PackError, match="nothing to pack"):
        pack(root, tmp_path / "out" / "train")
    assert output_files(tmp_path / "out" / "train") == []
    assert_no_tmp(tmp_path)


def test_interrupt_removes_temporaries(good_tree, tmp_path, monkeypatch):
    real_handle = packing._handle
    seen = []

    def interrupt_second(*args, **kwargs):
        seen.append(1)
        if len(seen) == 2:
            raise KeyboardInterrupt
        return real_handle(*args, **kwargs)

    monkeypatch.setattr(packing, "_handle", interrupt_second)
    prefix = tmp_path / "out" / "train"
    with pytest.raises(KeyboardInterrupt):
        pack(good_tree, prefix, num_workers=2)
    assert output_files(prefix) == []
    assert_no_tmp(tmp_path)


# ----------------------------------------------------------------------------- parsing
def test_parse_annotation_errors(tmp_path):
    path = tmp_path / "x.xml"
    path.write_text("<annotation><object><name>dog</name></object></annotation>")
    with pytest.raises(PackError, match=f"{path}: missing <size>"):
        parse_annotation(str(path), VOC_CLASSES)
    path.write_text(voc_xml(40, 30, [("dog", 1, 1, "abc", 9, 0)]))
    with pytest.raises(PackError, match="not a number"):
        parse_annotation(str(path), VOC_CLASSES)
    path.write_text(voc_xml(40, 30, [("person", 1, 1, 9, 9, 0)]))
    with pytest.raises(PackError, match="unknown class 'person'") as info:
        parse_annotation(str(path), ("dog", "cat"))
    assert info.value.kind == "unknown class" and info.value.path == str(path)
    with pytest.raises(PackError, match="unknown class 'person'"):
        parse_annotation(str(path), ("dog", "cat"), other_classes="skip")
    ann = parse_annotation(str(path), ("dog", "person"))
    np.testing.assert_array_equal(ann.objects, np.float32([[1, 0, 0, 8 / 40, 8 / 30, 0]]))
    assert ann.ignored == {}
    path.write_text(voc_xml(40, 30, [("person", 1, 1, 9, 9, 0), ("dog", 2, 2, 9, 9, 0)] * 2))
    ann = parse_annotation(str(path), ("cat", "dog"), other_classes="drop")
    assert ann.ignored == {"person": 2}
    np.testing.assert_array_equal(
        ann.objects, np.float32([[1, 1 / 40, 1 / 30, 8 / 40, 8 / 30, 0]] * 2)
    )


def test_read_image_set(tmp_path):
    root = tmp_path / "VOCdevkit"
    write_voc(root, GOOD[:2], year="my-data", split="val")
    assert read_image_set(root, "my-data-val") == [
        ("VOCmy-data/JPEGImages/000001.jpg", "VOCmy-data/Annotations/000001.xml"),
        ("VOCmy-data/JPEGImages/000002.jpg", "VOCmy-data/Annotations/000002.xml"),
    ]
    missing = root / "VOCmy-data" / "ImageSets" / "Main" / "test.txt"
    with pytest.raises(PackError, match=f"{missing}: image set file not found"):
        read_image_set(root, "my-data-test")
    with pytest.raises(PackError, match="expected YEAR-SPLIT"):
        read_image_set(root, "trainval")


# ----------------------------------------------------------------------------- CLI
def test_cli_main_with_class_file_and_summary(tmp_path):
    root = tmp_path / "VOCdevkit"
    write_voc(root, GOOD[:2])
    classes = tmp_path / "classes.txt"
    classes.write_text("person\ndog\n\ncar\n")
    prefix = tmp_path / "out" / "pets"
    proc = pack_cli(
        "--voc-root",
        root,
        "--sets",
        "sample-train",
        "--out",
        prefix,
        "--classes",
        classes,
        "--workers",
        "0",
        "--no-progress",
    )
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "packed 2 images" in out and "difficult: 1" in out
    assert Path(f"{prefix}.classes.txt").read_text() == "person\ndog\ncar\n"
    (_, raw), _ = read_records(prefix)
    assert mx.recordio.unpack(raw)[0].label[4] == 1  # 'dog' is index 1 in this class list


def test_cli_class_subset_reports_each_skip_once(tmp_path):
    root = subset_tree(tmp_path)
    ann = root / "VOCsample" / "Annotations"
    common = ["--voc-root", root, "--sets", "sample-train", "--classes", "dog,person"]
    common += ["--workers", "0"]  # progress bar on: tqdm.write must not duplicate lines

    proc = pack_cli(*common, "--out", tmp_path / "drop" / "t")
    assert proc.returncode == 0, proc.stderr
    assert "packed 3 images" in proc.stdout
    lines = proc.stdout.splitlines()
    assert (
        "objects of classes not in the list, dropped: cat 2, aeroplane 1, car 1, tvmonitor 1"
        in lines
    )
    assert "skipped images: 1 (no usable objects: 1)" in lines
    assert (proc.stdout + proc.stderr).count(str(ann / "cats.xml")) == 1
    assert len(read_records(tmp_path / "drop" / "t")) == 3

    proc = pack_cli(*common, "--other-classes", "skip", "--out", tmp_path / "skip" / "t")
    assert proc.returncode == 0, proc.stderr
    assert "packed 1 images" in proc.stdout and "unknown class: 3" in proc.stdout
    for name in ("000002.xml", "000003.xml", "cats.xml"):
        assert (proc.stdout + proc.stderr).count(str(ann / name)) == 1, name
        assert f"{ann / name}: unknown class" in proc.stderr

    # --strict alone: an out-of-list class is a bad item, and the error says how to keep going
    proc = pack_cli(*common, "--strict", "--out", tmp_path / "strict" / "t")
    assert_one_line_error(
        proc, str(ann / "000002.xml"), "unknown class 'car'", "--other-classes drop"
    )
    assert not (tmp_path / "strict").exists() or output_files(tmp_path / "strict" / "t") == []


def test_cli_other_classes_choices(tmp_path):
    proc = pack_cli(
        "--voc-root", tmp_path, "--sets", "a-b", "--out", tmp_path / "x", "--other-classes", "keep"
    )
    assert proc.returncode == 2 and "invalid choice: 'keep'" in proc.stderr
    help_text = pack_cli("--help").stdout
    assert "--other-classes {drop,skip,error}" in help_text


@pytest.mark.parametrize(
    "argv, expected",
    [
        (
            ["--voc-root", "{tmp}/nowhere", "--sets", "2007-trainval"],
            "VOC root directory not found",
        ),
        (["--voc-root", "{tmp}", "--sets", "2007-trainval"], "image set file not found"),
        (
            ["--voc-root", "{tmp}", "--sets", "2007-trainval", "--classes", "dog,cat,dog"],
            "duplicate class names: dog",
        ),
    ],
)
def test_cli_errors_are_one_line(tmp_path, argv, expected):
    argv = [a.format(tmp=tmp_path) for a in argv] + ["--out", str(tmp_path / "o" / "x")]
    captured = pack_cli(*argv)
    assert captured.returncode == 1
    assert captured.stdout == ""
    assert captured.stderr.startswith("error: ") and expected in captured.stderr
    assert len(captured.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "o").exists() or output_files(tmp_path / "o" / "x") == []


def test_cli_out_dir_packs_the_standard_train_and_test_split(tmp_path):
    # VOC2007 trainval + test and VOC2012 trainval, as in the real devkit.
    root = tmp_path / "VOCdevkit"
    write_voc(root, GOOD[:2], year="2007", split="trainval")
    write_voc(root, GOOD[2:], year="2007", split="test")
    write_voc(root, [dict(GOOD[0], id="2012_000001")], year="2012", split="trainval")
    out = tmp_path / "voc"
    proc = pack_cli("--voc-root", root, "--out-dir", out, "--workers", "0", "--no-progress")
    assert proc.returncode == 0, proc.stderr
    assert sorted(os.listdir(out)) == sorted(f"{s}{e}" for s in ("train", "test") for e in OUTPUTS)
    train = [mx.recordio.unpack(raw)[0].label for _, raw in read_records(out / "train")]
    test = [mx.recordio.unpack(raw)[0].label for _, raw in read_records(out / "test")]
    assert len(train) == 3 and len(test) == 1
    np.testing.assert_allclose(
        np.asarray(test[0][4:]).reshape(-1, 6), expected_rows(GOOD[2]), rtol=1e-6
    )
    assert Path(out / "test.classes.txt").read_text().split() == list(VOC_CLASSES)
    assert proc.stdout.count("packed") == 2


def test_cli_out_dir_and_out_are_exclusive(tmp_path):
    proc = pack_cli(
        "--voc-root",
        tmp_path,
        "--out-dir",
        tmp_path,
        "--sets",
        "2007-test",
        "--out",
        tmp_path / "x",
    )
    assert proc.returncode == 1
    err = proc.stderr
    assert err.startswith("error: ") and "either --out-dir or --sets" in err


def test_cli_failed_write_is_one_line_and_leaves_nothing(tmp_path):
    """Files limited to 20 kB (writes then fail as on a full disk): MXNet's record writer
    reports the short write, the packer names the file, and no output or temporary stays."""
    root = tmp_path / "VOCdevkit"
    write_voc(
        root,
        [
            {"id": f"{i:06d}", "size": (200, 200), "objects": [("dog", 10, 10, 150, 150, 0)]}
            for i in range(3)
        ],
    )
    prefix = tmp_path / "out" / "big"

    proc = subprocess.run(
        [
            sys.executable,
            str(CLI),
            "--voc-root",
            str(root),
            "--sets",
            "sample-train",
            "--out",
            str(prefix),
            "--workers",
            "0",
            "--no-progress",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
        preexec_fn=limit_file_size(20000),
    )
    assert proc.returncode == 1, proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith(f"error: {prefix}.rec: could not be written"), last
    assert "Traceback" not in proc.stderr
    assert output_files(prefix) == []
