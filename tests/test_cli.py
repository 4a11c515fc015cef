"""The scripts on the sample: evaluation, detection, and one-line errors for bad input."""
import json

import mxnet as mx
import pytest
from mxnet import autograd

from conftest import run_cli
from ssd_gluon import model_zoo


def _one_line_error(proc, *needles):
    assert proc.returncode == 1, (proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ")
    for n in needles:
        assert n in last


@pytest.fixture(scope="module")
def demo_params(tmp_path_factory):
    net = model_zoo.get_model("ssd_demo", ops="builtin")
    net.initialize()
    with autograd.predict_mode():
        net(mx.nd.zeros((1, 3, 96, 96)))
    path = str(tmp_path_factory.mktemp("p") / "demo.params")
    net.save_parameters(path)
    return path


def test_train_missing_rec(tmp_path):
    proc = run_cli("scripts/train.py", "--model", "ssd_demo", "--train",
                   str(tmp_path / "nope.rec"), "--out", str(tmp_path / "o"))
    _one_line_error(proc, "nope.rec", "not found")


def test_train_unknown_model(sample_dir, tmp_path):
    proc = run_cli("scripts/train.py", "--model", "ssd_9000", "--train",
                   str(sample_dir / "train.rec"), "--out", str(tmp_path / "o"))
    _one_line_error(proc, "unknown model 'ssd_9000'")


def test_pack_broken_xml_is_reported(tmp_path):
    voc = tmp_path / "VOCdevkit"
    proc = run_cli("data/make_sample.py", "--out", str(voc), "--num-train", "3", "--num-test", "1")
    assert proc.returncode == 0, proc.stderr
    xml = voc / "VOCsample" / "Annotations" / "000001.xml"
    xml.write_text(xml.read_text()[:40])
    proc = run_cli("data/pack_voc.py", "--voc-root", str(voc), "--sets", "sample-train",
                   "--classes", "circle,rectangle,triangle,cross", "--out", str(tmp_path / "t"),
                   "--strict")
    _one_line_error(proc, "000001.xml")
    assert not list(tmp_path.glob("t.*"))


def test_eval_and_detect_on_sample(sample_dir, demo_params, tmp_path):
    out = tmp_path / "eval.json"
    proc = run_cli("scripts/eval_voc.py", "--model", "ssd_demo", "--params", demo_params,
                   "--rec", str(sample_dir / "test.rec"), "--out", str(out))
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.load(open(out))
    assert result["images"] == 32 and 0 <= result["mAP"] <= 1
    assert set(result["per_class"]) == {"circle", "rectangle", "triangle", "cross"}
    assert "mAP" in proc.stdout

    images = sorted((sample_dir / "VOCsample" / "JPEGImages").glob("*.jpg"))[:2]
    proc = run_cli("scripts/detect.py", "--model", "ssd_demo", "--params", demo_params,
                   "--thresh", "0.0", "--images", *map(str, images), "--out", str(tmp_path / "det"))
    assert proc.returncode == 0, proc.stderr[-2000:]
    dets = json.load(open(tmp_path / "det" / "detections.json"))
    assert len(dets) == 2
    for img in images:
        assert (tmp_path / "det" / (img.stem + ".png")).stat().st_size > 1000


def test_detect_not_an_image(demo_params, tmp_path):
    bad = tmp_path / "notes.jpg"
    bad.write_text("hello")
    proc = run_cli("scripts/detect.py", "--model", "ssd_demo", "--params", demo_params,
                   "--images", str(bad), "--out", str(tmp_path / "d"))
    _one_line_error(proc, "notes.jpg", "not a readable image")


def test_plot_metrics_of_a_run(tmp_path):
    records = [dict(type="train", epoch=1, iteration=i, step=i, loss=5.0 / i, cls_loss=3.0 / i,
                    box_loss=2.0 / i, lr=1e-3, images_per_sec=10.0) for i in range(1, 6)]
    records += [dict(type="epoch", epoch=1, step=5, loss=2.0),
                dict(type="val", epoch=1, step=5, mAP=0.4, per_class={})]
    with open(tmp_path / "metrics.jsonl", "w") as f:
        f.writelines(json.dumps(r) + "\n" for r in records)
        f.write('{"type": "train", "ep')                 # torn last line of a killed writer
    proc = run_cli("scripts/plot_metrics.py", str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    _one_line_error(run_cli("scripts/plot_metrics.py", str(tmp_path / "nowhere")),
                    "metrics.jsonl: no metrics file")
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "metrics.jsonl").write_text("")
    _one_line_error(run_cli("scripts/plot_metrics.py", str(tmp_path / "empty")),
                    "no training records to plot")
