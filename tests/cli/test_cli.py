"""The scripts on the sample: evaluation, detection, and one-line errors for bad input."""

import json

import mxnet as mx
import pytest
from mxnet import autograd

from ssd_gluon import get_model

from conftest import assert_one_line_error, run_cli


@pytest.fixture(scope="module")
def demo_params(tmp_path_factory):
    net = get_model("ssd_demo", ops="builtin")
    net.initialize()
    with autograd.predict_mode():
        net(mx.nd.zeros((1, 3, 96, 96)))
    path = str(tmp_path_factory.mktemp("p") / "demo.params")
    net.save_parameters(path)
    return path


def test_train_missing_rec(tmp_path):
    argv = ["--model", "ssd_demo", "--train", str(tmp_path / "nope.rec"), "--out", str(tmp_path)]
    assert_one_line_error(run_cli("scripts/train.py", *argv), "nope.rec", "not found")
    # --debug: the same error with its traceback
    proc = run_cli("scripts/train.py", *argv, "--debug")
    assert proc.returncode == 1
    assert "Traceback" in proc.stderr and "nope.rec: record file not found" in proc.stderr


def test_train_unknown_model(sample_dir, tmp_path):
    proc = run_cli(
        "scripts/train.py",
        "--model",
        "ssd_9000",
        "--train",
        str(sample_dir / "train.rec"),
        "--out",
        str(tmp_path / "o"),
    )
    assert_one_line_error(proc, "unknown model 'ssd_9000'")


def test_pack_broken_xml_is_reported(tmp_path):
    voc = tmp_path / "VOCdevkit"
    proc = run_cli("data/make_sample.py", "--out", str(voc), "--num-train", "3", "--num-test", "1")
    assert proc.returncode == 0, proc.stderr
    xml = voc / "VOCsample" / "Annotations" / "000001.xml"
    xml.write_text(xml.read_text()[:40])
    proc = run_cli(
        "data/pack_voc.py",
        "--voc-root",
        str(voc),
        "--sets",
        "sample-train",
        "--classes",
        "circle,rectangle,triangle,cross",
        "--out",
        str(tmp_path / "t"),
        "--strict",
    )
    assert_one_line_error(proc, "000001.xml")
    assert not list(tmp_path.glob("t.*"))


def test_eval_and_detect_on_sample(sample_dir, demo_params, tmp_path):
    out = tmp_path / "eval.json"
    proc = run_cli(
        "scripts/eval_voc.py",
        "--model",
        "ssd_demo",
        "--params",
        demo_params,
        "--rec",
        str(sample_dir / "test.rec"),
        "--out",
        str(out),
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.load(open(out))
    assert result["images"] == 32 and 0 <= result["mAP"] <= 1
    assert set(result["per_class"]) == {"circle", "rectangle", "triangle", "cross"}
    assert "mAP" in proc.stdout

    images = sorted((sample_dir / "VOCsample" / "JPEGImages").glob("*.jpg"))[:2]
    proc = run_cli(
        "scripts/detect.py",
        "--model",
        "ssd_demo",
        "--params",
        demo_params,
        "--thresh",
        "0.0",
        "--images",
        *map(str, images),
        "--out",
        str(tmp_path / "det"),
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    dets = json.load(open(tmp_path / "det" / "detections.json"))
    assert len(dets) == 2
    for img in images:
        assert (tmp_path / "det" / (img.stem + ".png")).stat().st_size > 1000


def test_detect_not_an_image(demo_params, tmp_path):
    bad = tmp_path / "notes.jpg"
    bad.write_text("hello")
    proc = run_cli(
        "scripts/detect.py",
        "--model",
        "ssd_demo",
        "--params",
        demo_params,
        "--images",
        str(bad),
        "--out",
        str(tmp_path / "d"),
    )
    assert_one_line_error(proc, "notes.jpg", "not a readable image")


def test_plot_metrics_of_a_run(tmp_path):
    records = [
        dict(
            type="train",
            epoch=1,
            iteration=i,
            step=i,
            loss=5.0 / i,
            cls_loss=3.0 / i,
            box_loss=2.0 / i,
            lr=1e-3,
            images_per_sec=10.0,
        )
        for i in range(1, 6)
    ]
    records += [
        dict(type="epoch", epoch=1, step=5, loss=2.0),
        dict(type="val", epoch=1, step=5, mAP=0.4, per_class={}),
    ]
    with open(tmp_path / "metrics.jsonl", "w") as f:
        f.writelines(json.dumps(r) + "\n" for r in records)
        f.write('{"type": "train", "ep')  # torn last line of a killed writer
    proc = run_cli("scripts/plot_metrics.py", str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert_one_line_error(
        run_cli("scripts/plot_metrics.py", str(tmp_path / "nowhere")),
        "metrics.jsonl: no metrics file",
    )
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "metrics.jsonl").write_text("")
    assert_one_line_error(
        run_cli("scripts/plot_metrics.py", str(tmp_path / "empty")), "no training records to plot"
    )


def test_eval_detect_from_export_and_pr_plot(sample_dir, demo_params, tmp_path):
    """The exported symbol (uint8 input) evaluates to the same mAP as its parameters, the
    PR plot and speed figures are written, and detect.py runs from the export; a bad image
    among good ones is reported in one line and the others are processed."""
    rec = str(sample_dir / "test.rec")
    prefix = str(tmp_path / "exp" / "demo")
    proc = run_cli(
        "scripts/export_symbol.py",
        "--model",
        "ssd_demo",
        "--params",
        demo_params,
        "--input-dtype",
        "uint8",
        "--out",
        prefix,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    results = {}
    for name, source in (
        ("params", ["--model", "ssd_demo", "--params", demo_params]),
        ("symbol", ["--symbol", prefix]),
    ):
        out = tmp_path / ("%s.json" % name)
        proc = run_cli(
            "scripts/eval_voc.py",
            *source,
            "--rec",
            rec,
            "--metric",
            "voc2010",
            "--speed-repeats",
            "2",
            "--out",
            str(out),
        )
        assert proc.returncode == 0, proc.stderr[-2000:]
        results[name] = json.load(open(out))
        assert (tmp_path / ("%s.pr.png" % name)).read_bytes()[:4] == b"\x89PNG"
    assert results["symbol"]["mAP"] == pytest.approx(results["params"]["mAP"], abs=1e-6)
    assert results["symbol"]["metric"] == "voc2010"
    assert set(results["params"]["speed"]) == {"batch_1", "batch_8"}
    assert results["params"]["speed"]["batch_8"]["images_per_sec"] > 0
    assert results["params"]["data_images_per_sec"] > 0
    assert_one_line_error(
        run_cli("scripts/eval_voc.py", "--symbol", prefix, "--data-shape", "128", "--rec", rec),
        "exported for 96x96 input, not 128x128",
    )

    images = sorted((sample_dir / "VOCsample" / "JPEGImages").glob("*.jpg"))[:2]
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"\xff\xd8 not really")
    proc = run_cli(
        "scripts/detect.py",
        "--symbol",
        prefix,
        "--thresh",
        "0.0",
        "--images",
        str(images[0]),
        str(bad),
        str(images[1]),
        "--out",
        str(tmp_path / "det"),
    )
    assert proc.returncode == 1
    assert [line for line in proc.stderr.splitlines() if line.startswith("error: ")] == [
        "error: %s: not a readable image" % bad
    ]
    assert sorted(json.load(open(tmp_path / "det" / "detections.json"))) == sorted(map(str, images))


@pytest.mark.parametrize("metric", ["voc07", "coco"])
def test_eval_under_horovodrun_gathers_the_shards(sample_dir, demo_params, tmp_path, metric):
    import os
    import sys

    horovodrun = os.path.join(os.path.dirname(sys.executable), "horovodrun")
    if not os.path.exists(horovodrun):
        pytest.skip("horovod is not installed")
    rec = str(sample_dir / "test.rec")
    args = [
        "scripts/eval_voc.py",
        "--model",
        "ssd_demo",
        "--params",
        demo_params,
        "--rec",
        rec,
        "--speed-repeats",
        "0",
        "--metric",
        metric,
    ]
    single = run_cli(*args, "--out", str(tmp_path / "one.json"))
    assert single.returncode == 0, single.stderr[-2000:]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    two = run_cli(
        horovodrun,
        "-np",
        "2",
        "-H",
        "localhost:2",
        sys.executable,
        *args,
        "--out",
        str(tmp_path / "two.json"),
        env=env,
    )
    assert two.returncode == 0, two.stdout[-2000:]
    one, both = json.load(open(tmp_path / "one.json")), json.load(open(tmp_path / "two.json"))
    assert both["workers"] == 2 and both["images"] == one["images"] == 32
    assert both["mAP"] == pytest.approx(one["mAP"], abs=1e-9)
    assert both["per_class"] == pytest.approx(one["per_class"], abs=1e-9)
    if metric == "coco":  # the same detections, in the same order, for the same image ids
        assert (tmp_path / "two.detections.json").read_text() == (
            tmp_path / "one.detections.json"
        ).read_text()


def _run_cli_main(monkeypatch, main, *argv):
    """utils.cli.run(main) in this process with ``argv``; returns the SystemExit code."""
    import argparse

    from ssd_gluon.utils import cli

    monkeypatch.setattr("sys.argv", ["tool", *argv])
    with pytest.raises(SystemExit) as stop:
        cli.run(main, argparse.ArgumentParser())
    return stop.value.code


def test_user_errors_are_one_line_and_other_errors_keep_their_traceback(monkeypatch, capsys):
    import mxnet as mx

    from ssd_gluon.utils.errors import MissingFileError, UserError

    def bad_input(args):
        raise MissingFileError("x.params: parameter file not found")

    assert _run_cli_main(monkeypatch, bad_input) == 1
    assert capsys.readouterr().err == "error: x.params: parameter file not found\n"
    assert _run_cli_main(monkeypatch, lambda args: 0) == 0
    with pytest.raises(UserError):  # --debug: the traceback of user errors
        _run_cli_main(monkeypatch, bad_input, "--debug")

    def internal(args):  # an MXNet failure is a bug, not bad input
        raise mx.base.MXNetError("Check failed: shape mismatch")

    with pytest.raises(mx.base.MXNetError):
        _run_cli_main(monkeypatch, internal)
    assert "error:" not in capsys.readouterr().err


@pytest.mark.parametrize(
    "script, argv, flag",
    [
        ("scripts/eval_voc.py", ["--rec", "x.rec", "--batch-size", "0"], "--batch-size"),
        ("scripts/eval_voc.py", ["--rec", "x.rec", "--threads", "0"], "--threads"),
        ("scripts/train.py", ["--val-batch-size", "0"], "--val-batch-size"),
        ("scripts/train.py", ["--batch-size", "-4"], "--batch-size"),
        ("scripts/train.py", ["--epochs", "0"], "--epochs"),
        ("scripts/train.py", ["--lr", "0"], "--lr"),
        ("scripts/train.py", ["--lr", "nan"], "--lr"),
        ("scripts/train.py", ["--threads", "0"], "--threads"),
        ("scripts/detect.py", ["--images", "x.jpg", "--thresh", "1.5"], "--thresh"),
        (
            "scripts/export_symbol.py",
            ["--model", "m", "--params", "p", "--nms-thresh", "0"],
            "--nms-thresh",
        ),
        ("data/show_augmentation.py", ["--rec", "x.rec", "--num", "0"], "--num"),
    ],
)
def test_numbers_are_checked_where_they_are_typed(tmp_path, script, argv, flag):
    """One line naming the flag, exit 2 (a usage error), before anything runs or is written."""
    if script == "scripts/train.py":
        argv = ["--model", "ssd_demo", "--train", "x.rec"] + argv
    proc = run_cli(script, *argv, "--out", str(tmp_path / "out"))
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: argument %s: " % flag), lines
    assert not (tmp_path / "out").exists()


def test_recipe_conflicts_name_the_flags(sample_dir, tmp_path):
    argv = ["--model", "ssd_300_vgg16_atrous_voc", "--from-scratch", "--epochs", "1"]
    proc = run_cli(
        "scripts/train.py",
        *argv,
        "--train",
        str(sample_dir / "train.rec"),
        "--out",
        str(tmp_path / "o"),
    )
    assert_one_line_error(proc, "warm-up", "--warmup-epochs", "--epochs", "--lr-steps")
    proc = run_cli(
        "scripts/train.py",
        "--model",
        "ssd_demo",
        "--lr-steps",
        "0.5,2",
        "--train",
        str(sample_dir / "train.rec"),
        "--out",
        str(tmp_path / "o"),
    )
    assert_one_line_error(proc, "--lr-steps must be fractions of training in (0, 1]")


def test_detect_never_overwrites_inputs_nor_collides(demo_params, tmp_path):
    """Inputs one.jpg and one.png in the output folder: refused, then with --out-with-inputs
    two distinct drawings appear and both inputs stay as they were."""
    import cv2
    import numpy as np

    folder = tmp_path / "photos"
    folder.mkdir()
    img = np.random.RandomState(0).randint(0, 255, (80, 90, 3)).astype(np.uint8)
    cv2.imwrite(str(folder / "one.jpg"), img)
    cv2.imwrite(str(folder / "one.png"), img)
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    argv = ["--model", "ssd_demo", "--params", demo_params, "--images", str(folder)]
    assert_one_line_error(
        run_cli("scripts/detect.py", *argv, "--out", str(folder)),
        "holds input images",
        "--out-with-inputs",
    )
    proc = run_cli("scripts/detect.py", *argv, "--out", str(folder), "--out-with-inputs")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert all((folder / n).read_bytes() == b for n, b in before.items())
    assert {"one_jpg.png", "one_png.png"} <= {p.name for p in folder.iterdir()}
    assert len(json.load(open(folder / "detections.json"))) == 2


@pytest.mark.parametrize("script", ["train", "eval", "detect", "augment"])
def test_unwritable_out_is_one_line(sample_dir, demo_params, tmp_path, script):
    """--out pointing at an existing file (a folder is expected) or below it."""
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    rec = str(sample_dir / "test.rec")
    commands = {
        "train": [
            "scripts/train.py",
            "--model",
            "ssd_demo",
            "--train",
            rec,
            "--epochs",
            "3",
            "--out",
            str(blocker),
        ],
        "eval": [
            "scripts/eval_voc.py",
            "--model",
            "ssd_demo",
            "--params",
            demo_params,
            "--rec",
            rec,
            "--out",
            str(blocker / "eval.json"),
        ],
        "detect": [
            "scripts/detect.py",
            "--model",
            "ssd_demo",
            "--params",
            demo_params,
            "--images",
            str(sample_dir / "VOCsample" / "JPEGImages" / "002000.jpg"),
            "--out",
            str(blocker),
        ],
        "augment": ["data/show_augmentation.py", "--rec", rec, "--out", str(blocker / "aug.png")],
    }
    proc = run_cli(*commands[script])
    assert_one_line_error(proc, str(blocker))
    assert blocker.read_text() == "not a folder"
