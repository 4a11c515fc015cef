"""int8 post-training quantization (``ssd_gluon.deploy.quantize``, ``scripts/quantize.py``):
the export loads and runs like a float32 one, keeps its accuracy, and bad input is one line
that leaves nothing behind."""

import json
import shutil

import mxnet as mx
import pytest

from ssd_gluon import get_model
from ssd_gluon.deploy.loading import load_detector
from ssd_gluon.deploy.normalize import deploy_block
from ssd_gluon.deploy.quantize import float32_layers
from ssd_gluon.utils.errors import UserError

from conftest import assert_one_line_error, run_cli

# VOC07 mAP on the training images: float32 0.9991, int8 0.9977-0.9995 (measured: naive or
# entropy calibration on 1-6 batches of 16). The tolerance is ten times the largest loss.
MAP_TOLERANCE = 0.02


@pytest.fixture(scope="module")
def trained(fitted_demo):
    """The weights of ssd_demo fitted to the sample (conftest.fitted_demo)."""
    return str(fitted_demo / "final.params")


def quantize_cli(params, rec, out, *extra):
    return run_cli(
        "scripts/quantize.py",
        "--model",
        "ssd_demo",
        "--params",
        params,
        "--calib-rec",
        str(rec),
        "--num-calib-batches",
        "2",
        "--batch-size",
        "16",
        "--out",
        str(out),
        *extra,
    )


@pytest.fixture(scope="module")
def int8_export(trained, sample_dir, tmp_path_factory):
    """(PREFIX, CompletedProcess) of the trained model quantized with naive calibration."""
    prefix = tmp_path_factory.mktemp("quantize_export") / "demo_int8"
    proc = quantize_cli(trained, sample_dir / "train.rec", prefix)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return prefix, proc


def test_int8_export_is_complete_and_loads(int8_export):
    prefix, proc = int8_export
    assert "resized to 96x96" in proc.stdout
    assert "reloaded in a fresh process" in proc.stdout
    assert sorted(p.name for p in prefix.parent.iterdir()) == [
        "demo_int8-0000.params",
        "demo_int8-meta.json",
        "demo_int8-symbol.json",
    ]
    meta = json.loads((prefix.parent / "demo_int8-meta.json").read_text())
    assert meta["precision"] == "int8"
    assert meta["quantization"]["calib_mode"] == "naive"
    assert meta["quantization"]["calib_images"] == 32
    # The convolutions run in int8; nothing of the decoding/NMS is quantized.
    nodes = json.loads((prefix.parent / "demo_int8-symbol.json").read_text())["nodes"]
    convs = [n for n in nodes if n["op"] == "_sg_mkldnn_conv"]
    assert convs and all(n["attrs"].get("quantized") == "true" for n in convs)
    assert not [
        n["name"] for n in nodes if n["name"].startswith("ssdpredictor") and "quantiz" in n["op"]
    ]
    detector = load_detector(symbol=str(prefix))
    assert detector.data_shape == 96 and len(detector.classes) == 4
    ids, scores, boxes = detector.block(mx.nd.random.uniform(0, 255, (3, 3, 96, 96)))
    assert ids.shape == (3, 200, 1) and scores.shape == (3, 200, 1) and boxes.shape == (3, 200, 4)


def test_int8_map_close_to_float32(trained, int8_export, sample_dir, tmp_path):
    prefix, _ = int8_export
    rec = str(sample_dir / "train.rec")
    maps = {}
    for name, source in (
        ("float32", ["--model", "ssd_demo", "--params", trained]),
        ("int8", ["--symbol", str(prefix)]),
    ):
        out = tmp_path / (name + ".json")
        proc = run_cli(
            "scripts/eval_voc.py", *source, "--rec", rec, "--speed-repeats", "0", "--out", str(out)
        )
        assert proc.returncode == 0, proc.stderr[-2000:]
        maps[name] = json.loads(out.read_text())["mAP"]
    assert maps["float32"] > 0.9  # trained nearly by heart: a real comparison
    assert abs(maps["int8"] - maps["float32"]) <= MAP_TOLERANCE, maps


def test_calibration_class_mismatch_is_one_line_error(trained, sample_dir, tmp_path):
    for ext in (".rec", ".idx"):
        shutil.copy(sample_dir / ("train" + ext), tmp_path / ("five" + ext))
    (tmp_path / "five.classes.txt").write_text("a\nb\nc\nd\ne\n")
    out = tmp_path / "out" / "demo_int8"
    proc = quantize_cli(trained, tmp_path / "five.rec", out)
    assert_one_line_error(proc, "five.rec", "5 classes", "detects 4")
    assert not (tmp_path / "out").exists()


def test_unwritable_out_is_one_line_error(trained, sample_dir, tmp_path):
    (tmp_path / "afile").write_text("")
    proc = quantize_cli(trained, sample_dir / "train.rec", tmp_path / "afile" / "demo_int8")
    assert_one_line_error(proc, "--out", "afile")
    proc = quantize_cli(trained, sample_dir / "train.rec", str(tmp_path) + "/")
    assert_one_line_error(proc, "--out", "is a folder")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile"]


def test_float32_layers_keep_decoding_and_head_concats():
    net = get_model("ssd_demo", ops="builtin")
    net.initialize()
    block = deploy_block(net)
    graph = mx.sym.Group(list(block(mx.sym.var("data"))))
    nodes = [n for n in json.loads(graph.tojson())["nodes"] if n["op"] != "null"]
    # Gluon numbers its blocks per process (vggatrous0, vggatrous1, ...): take the name here
    first_conv = next(n["name"] for n in nodes if n["op"] == "Convolution")
    excluded, network = float32_layers(block, keep_float=[first_conv])
    predictor = [n["name"] for n in nodes if n["name"].startswith(block[1].prefix)]
    assert predictor and set(predictor) <= set(excluded)
    kinds = {n["name"]: n["op"] for n in nodes}
    assert {kinds[name] for name in network} == {"Flatten", "Concat", "Convolution"}
    assert [name for name in network if kinds[name] == "Convolution"] == [first_conv]
    with pytest.raises(UserError, match="no_such_layer"):
        float32_layers(block, keep_float=["no_such_layer"])
