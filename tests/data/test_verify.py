"""The record check every tool runs before reading a .rec: damaged or foreign files are one
line naming the file, bad records are named and left out (or fatal with --strict-data), and
what is read afterwards is exactly the good records."""

import json
import shutil
import struct

import mxnet as mx
import numpy as np
import pytest

from ssd_gluon.data import loader, records
from ssd_gluon.data.records import EMPTY_OBJECT, make_label
from ssd_gluon.data.verify import MAGIC, open_records, record_problem
from ssd_gluon.data.writer import RecordWriter
from ssd_gluon.utils.errors import UserError

from conftest import assert_one_line_error, run_cli

CLASSES = ["a", "b", "c"]
GOOD = [1, 0.1, 0.2, 0.6, 0.7, 0]


def write(prefix, labels, payloads=None, classes=CLASSES):
    """A record file through the packers' writer: one record per label, each holding
    ``payloads[i]`` (default: a tiny JPEG)."""
    jpeg = mx.recordio.pack_img(
        mx.recordio.IRHeader(0, 0, 0, 0), np.full((16, 16, 3), 128, np.uint8), img_fmt=".jpg"
    )[mx.recordio._IR_SIZE :]
    writer = RecordWriter(str(prefix), classes)
    for i, label in enumerate(labels):
        writer.write(
            "img%d.jpg" % i, np.asarray(label, np.float32), payloads[i] if payloads else jpeg
        )
    return writer.commit()[".rec"]


def labels_read(recs):
    """Every label row the evaluation iterator yields (padding objects dropped)."""
    out = []
    for batch in loader.val_iter(recs, 16, 4, threads=1):
        objects, _ = records.split_label(batch.label[0])
        for o in objects.asnumpy()[: 4 - batch.pad]:
            out.append(o[o[:, 0] >= 0])
    return out


@pytest.mark.parametrize(
    "objects, problem",
    [
        ([[0, np.nan, 0.2, 0.6, 0.7, 0]], "object 0: non-finite value"),
        ([GOOD, [0, 0.1, 0.2, np.inf, 0.7, 0]], "object 1: non-finite value"),
        ([[3, 0.1, 0.2, 0.6, 0.7, 0]], "object 0: class 3 not in 0..2"),
        ([[-1, 0.1, 0.2, 0.6, 0.7, 0]], "object 0: class -1 not in 0..2"),
        ([[0.5, 0.1, 0.2, 0.6, 0.7, 0]], "object 0: class 0.5 not in 0..2"),
        ([[0, 0.1, 0.2, 1.2, 0.7, 0]], "object 0: box [0.1, 0.2, 1.2, 0.7] outside [0, 1]"),
        ([[0, 0.6, 0.2, 0.1, 0.7, 0]], "object 0: box [0.6, 0.2, 0.1, 0.7] has min >= max"),
        ([[0, 0.1, 0.2, 0.6, 0.2, 0]], "object 0: box [0.1, 0.2, 0.6, 0.2] has min >= max"),
        ([[0, 0.1, 0.2, 0.6, 0.7, 3]], "object 0: flag 3 (not 0, 1 difficult or 2 crowd)"),
        (np.zeros((0, 6)), "no objects"),
    ],
)
def test_each_kind_of_bad_object_is_named(objects, problem):
    assert record_problem(make_label(64, 48, objects), num_classes=3) == problem
    assert record_problem(make_label(64, 48, [GOOD, GOOD]), num_classes=3) is None
    # crowd regions, and the placeholder of an image without objects, are valid
    assert record_problem(make_label(64, 48, [[0, 0.1, 0.2, 0.6, 0.7, 2]]), 3) is None
    assert record_problem(make_label(64, 48, [EMPTY_OBJECT]), 3) is None


def test_bad_headers_are_named():
    assert "label header [6, 4] is not [4, 6" in record_problem(np.array([6, 4, 64, 48] + GOOD))
    assert "image size [0, 48] is not positive" in record_problem(np.array([4, 6, 0, 48] + GOOD))
    assert "label length 9 is not 4 + 6 per object" in record_problem(
        np.array([4, 6, 64, 48] + GOOD[:5], np.float32)
    )


def test_bad_records_are_left_out_or_fatal(tmp_path, capsys):
    labels = [make_label(64, 48, [[i % 3, 0.1, 0.2, 0.5 + i / 100, 0.7, 0]]) for i in range(12)]
    labels[2] = make_label(64, 48, [[0, np.nan, 0.2, 0.6, 0.7, 0]])
    labels[5] = make_label(64, 48, [[7, 0.1, 0.2, 0.6, 0.7, 0]])
    labels[9] = make_label(64, 48, np.zeros((0, 6)))
    rec = write(tmp_path / "bad", labels)
    original = open(rec, "rb").read()
    got = open_records(rec)
    warning = capsys.readouterr().err
    assert warning.count("\n") == 1 and warning.startswith("warning: %s: 3 of 12 records" % rec)
    assert "record 2: object 0: non-finite value; record 5: object 0: class 7" in warning
    assert got.count == 9 and got.source == rec and got.path != rec
    assert [i for i, _ in got.bad] == [2, 5, 9]
    assert open(rec, "rb").read() == original  # the input is never touched
    # the readers see exactly the good records, in order, and shards cover them
    good = [lab for i, lab in enumerate(labels) if i not in (2, 5, 9)]
    read = labels_read(got)
    assert len(read) == 9
    for row, label in zip(read, good):
        np.testing.assert_array_equal(row.ravel(), label[4:])
    assert sum(got.shard_sizes(3)) == 9
    with pytest.raises(UserError, match=r"bad\.rec: 3 of 12 records are bad \(record 2: "):
        open_records(rec, strict=True)
    # a model with fewer classes than the file's list: class 2 is out of range for it
    assert [i for i, _ in open_records(rec, num_classes=2, report=False).bad] == [2, 5, 8, 9, 11]


def test_a_file_without_good_records_is_an_error(tmp_path):
    rec = write(tmp_path / "none", [make_label(64, 48, np.zeros((0, 6)))] * 3)
    with pytest.raises(UserError, match=r"none\.rec: none of its 3 records is usable \(record 0"):
        open_records(rec)


def test_records_split_around_the_magic_word_are_walked(tmp_path):
    """dmlc RecordIO splits a record whose payload holds the magic word at a 4-byte
    boundary; the walk joins the parts (labels, offsets and count as MXNet reads them)."""
    magic = struct.pack("<I", MAGIC)
    payloads = [b"\0" * 8 + magic * 3 + b"tail", b"plain", magic + b"x" * 7]
    labels = [make_label(64, 48, [GOOD] * (k + 1)) for k in range(3)]
    rec = write(tmp_path / "split", labels, payloads)
    got = open_records(rec)
    assert got.count == 3 and got.max_objects == 3 and not got.bad
    reader = mx.recordio.MXIndexedRecordIO(rec[:-4] + ".idx", rec, "r")
    for i in range(3):
        header, payload = mx.recordio.unpack(reader.read_idx(i))
        assert payload == payloads[i]
        np.testing.assert_array_equal(header.label, labels[i])


def _damage(kind, rec, tmp_path):
    """A damaged copy of ``rec`` (its .idx/.lst/.classes.txt beside it); returns its path."""
    out = str(tmp_path / "damaged.rec")
    for suffix in (".idx", ".lst", ".classes.txt"):
        shutil.copy(rec[:-4] + suffix, out[:-4] + suffix)
    data = open(rec, "rb").read()
    offsets = open_records(rec).offsets
    if kind == "cut inside a record":
        data = data[: offsets[-1] + 20]
    elif kind == "cut at a record boundary":
        data = data[: offsets[-1]]
    elif kind == "empty":
        data = b""
    elif kind == "not a .rec":
        data = b"JFIF" * 100
    open(out, "wb").write(data)
    if kind == "idx of another file":
        other = write(tmp_path / "other", [make_label(64, 48, [GOOD])] * 2)
        shutil.copy(other[:-4] + ".idx", out[:-4] + ".idx")
    elif kind == "stale lst":
        other = write(tmp_path / "other", [make_label(64, 48, [GOOD])] * 2)
        shutil.copy(other[:-4] + ".lst", out[:-4] + ".lst")
    elif kind == "lst with other labels":
        lines = open(out[:-4] + ".lst").read().splitlines()
        lines[1] = lines[1].replace("\t0.1\t", "\t0.15\t", 1)
        open(out[:-4] + ".lst", "w").write("\n".join(lines) + "\n")
    elif kind == "no idx":
        shutil.os.remove(out[:-4] + ".idx")
    return out


@pytest.mark.parametrize(
    "kind, message",
    [
        ("cut inside a record", "damaged.rec: truncated: the record at byte"),
        ("cut at a record boundary", "damaged.idx: lists 4 records, damaged.rec holds 3"),
        ("idx of another file", "damaged.idx: lists 2 records, damaged.rec holds 4"),
        ("empty", "damaged.rec: empty file (no records)"),
        ("not a .rec", "damaged.rec: no RecordIO record at byte 0"),
        ("stale lst", "damaged.lst: does not match damaged.rec (2 rows for 4 records)"),
        ("lst with other labels", "damaged.lst: does not match damaged.rec (row 1 holds other"),
        ("no idx", "damaged.idx: index file not found next to the .rec"),
    ],
)
def test_damaged_or_foreign_files_are_one_line(tmp_path, kind, message):
    rec = write(tmp_path / "good", [make_label(64, 48, [GOOD])] * 4)
    with pytest.raises(UserError) as err:
        open_records(_damage(kind, rec, tmp_path))
    assert message in str(err.value) and "\n" not in str(err.value)
    assert str(err.value).endswith("re-pack it with " + records.PACKERS)


def test_classification_rec_is_named(tmp_path):
    path = str(tmp_path / "cls.rec")
    writer = mx.recordio.MXIndexedRecordIO(path[:-4] + ".idx", path, "w")
    for i in range(3):
        writer.write_idx(i, mx.recordio.pack(mx.recordio.IRHeader(0, 2.0, i, 0), b"jpeg"))
    writer.close()
    with pytest.raises(UserError, match="cls.rec: record 0 holds a single label"):
        open_records(path)


def _sample_with_bad_records(sample_dir, tmp_path, name):
    """The sample's file ``name`` with record 3's box made NaN and record 7's class 9."""
    src = str(sample_dir / name)
    reader = mx.recordio.MXIndexedRecordIO(src[:-4] + ".idx", src, "r")
    writer = RecordWriter(str(tmp_path / name[:-4]), records.read_classes(src))
    for i in range(len(reader.keys)):
        header, payload = mx.recordio.unpack(reader.read_idx(i))
        label = np.array(header.label, np.float32)
        if i == 3:
            label[5] = np.nan
        if i == 7:
            label[4] = 9
        writer.write("img%d.jpg" % i, label, payload)
    reader.close()
    return writer.commit()[".rec"]


def test_train_and_eval_leave_bad_records_out_or_stop(sample_dir, tmp_path):
    rec = _sample_with_bad_records(sample_dir, tmp_path, "train.rec")
    argv = ["scripts/train.py", "--model", "ssd_demo", "--train", rec, "--epochs", "1"]
    argv += ["--batch-size", "16", "--threads", "1", "--ops", "builtin"]
    proc = run_cli(*argv, "--out", str(tmp_path / "run"))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "warning: %s: 2 of 96 records are bad and left out (record 3: object 0: " % rec in (
        proc.stderr
    )
    assert "record 7: object 0: class 9 not in 0..3" in proc.stderr
    assert "training ssd_demo on 94 images" in proc.stdout
    loss = [r["loss"] for r in map(json.loads, open(tmp_path / "run" / "metrics.jsonl"))]
    assert all(np.isfinite(v) and v > 0 for v in loss if v is not None)
    proc = run_cli(*argv, "--strict-data", "--out", str(tmp_path / "strict"))
    assert_one_line_error(proc, "train.rec: 2 of 96 records are bad (record 3: object 0:")
    assert not (tmp_path / "strict").exists()  # stopped before anything was written
    # evaluation: the mAP of the good records, never nan, and a valid eval.json
    test = _sample_with_bad_records(sample_dir, tmp_path, "test.rec")
    out = tmp_path / "eval.json"
    params = str(tmp_path / "run" / "final.params")
    evaluate = ["scripts/eval_voc.py", "--model", "ssd_demo", "--params", params, "--rec"]
    proc = run_cli(*evaluate, test, "--speed-repeats", "0", "--out", str(out))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "2 of 32 records are bad and left out" in proc.stderr
    result = json.loads(out.read_text())
    assert result["images"] == 30 and np.isfinite(result["mAP"])
    cut = _damage("cut at a record boundary", str(sample_dir / "test.rec"), tmp_path)
    proc = run_cli(*evaluate, cut)
    assert_one_line_error(proc, "damaged.idx: lists 32 records, damaged.rec holds 31")
