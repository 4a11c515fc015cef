"""ONNX export of the network (no post-processing) and the NumPy decode + per-class NMS:
onnxruntime + decode_and_nms must give the Gluon detector's detections."""

import os

import mxnet as mx
import numpy as np
import pytest
from mxnet import autograd

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from ssd_gluon import get_model  # noqa: E402
from ssd_gluon.deploy.normalize import deploy_block  # noqa: E402
from ssd_gluon.deploy.postprocess import decode_and_nms  # noqa: E402
from ssd_gluon.deploy.to_onnx import export_onnx, write_onnx  # noqa: E402
from ssd_gluon.deploy.verify import compare_detections, verify_onnx  # noqa: E402

from conftest import run_cli  # noqa: E402
from references.detection_reference import detection_output, softmax  # noqa: E402


@pytest.fixture(scope="module")
def demo_net(tmp_path_factory):
    """ssd_demo with fixed random weights (BatchNorm statistics set by one forward in
    predict mode), and its parameter file for the CLI."""
    mx.random.seed(7)
    net = get_model("ssd_demo", ops="builtin")
    net.initialize(mx.init.Xavier())
    with autograd.predict_mode():
        net(mx.nd.zeros((1, 3, 96, 96)))
    path = str(tmp_path_factory.mktemp("onnx_params") / "demo.params")
    net.save_parameters(path)
    return net, path


def _session(path):
    return ort.InferenceSession(path, providers=["CPUExecutionProvider"])


def test_onnx_round_trip_matches_gluon_detector(demo_net, tmp_path):
    net, _ = demo_net
    path = str(tmp_path / "out" / "ssd_demo.onnx")
    report = export_onnx(net, path, 96)
    assert report["detections"] > 0 and report["max_diff_probs"] < 1e-5
    assert os.listdir(tmp_path / "out") == ["ssd_demo.onnx"]  # no temporary left over

    model = onnx.load(path)
    assert [i.name for i in model.graph.input] == ["data"]  # weights are not inputs
    assert [o.name for o in model.graph.output] == ["probs", "offsets", "anchors"]
    assert model.opset_import[0].version == 13
    # Only standard operators: the anchors are a constant, no MultiBox* node survives.
    assert {n.op_type for n in model.graph.node} <= {
        "Conv",
        "BatchNormalization",
        "Relu",
        "MaxPool",
        "Transpose",
        "Flatten",
        "Concat",
        "Reshape",
        "Softmax",
        "Sub",
        "Div",
        "Mul",
        "Identity",
    }

    # Another batch size than the export check's, other pixels: same detections.
    sess = _session(path)
    meta = sess.get_modelmeta().custom_metadata_map
    assert '"circle"' in meta["classes"] and meta["data_shape"] == "96"
    image = np.random.RandomState(11).uniform(0, 255, (3, 3, 96, 96)).astype(np.float32)
    probs, offsets, anchors = sess.run(None, {"data": image})
    assert probs.shape == (3, 776, 5) and offsets.shape == (3, 776, 4)
    assert anchors.shape == (1, 776, 4)
    np.testing.assert_allclose(probs.sum(-1), 1, atol=1e-5)
    got = decode_and_nms(probs, offsets, anchors, image_size=(96, 96))
    expected = [o.asnumpy() for o in deploy_block(net)(mx.nd.array(image))]
    matched, excused, problems = compare_detections(expected, got, atol=1e-4)
    assert not problems and excused == 0
    assert matched == (expected[0] >= 0).sum() > 100
    for e, g in zip(expected, got):
        assert e.shape == g.shape

    # The comparison is not blind: slightly wrong decoding (one variance off by 1%) or
    # post-processing parameters are found.
    for wrong in (dict(variances=(0.1, 0.1, 0.2, 0.202)), dict(nms_thresh=0.5)):
        bad = decode_and_nms(probs, offsets, anchors, image_size=(96, 96), **wrong)
        assert compare_detections(expected, bad, atol=1e-4)[2], wrong


def test_verification_catches_a_wrong_model(demo_net, tmp_path):
    net, _ = demo_net
    path = str(tmp_path / "bad.onnx")
    write_onnx(net, path, 96)
    model = onnx.load(path)
    bias = next(t for t in model.graph.initializer if t.name == net.cls_heads[0].bias.name)
    # Per-channel changes (a common shift would cancel in the softmax).
    values = onnx.numpy_helper.to_array(bias) + np.linspace(-1, 1, bias.dims[0], dtype=np.float32)
    bias.CopyFrom(onnx.numpy_helper.from_array(values, bias.name))
    onnx.save(model, path)
    with pytest.raises(RuntimeError, match="bad.onnx: ONNX output probs differs from MXNet"):
        verify_onnx(net, path, 96)


@pytest.mark.parametrize("seed", [0, 1])
def test_decode_and_nms_matches_reference(seed):
    """Against the NumPy transcription of the paper's DetectionOutput (tests' reference),
    with few candidates (score threshold and NMS matter) and a non-square image size."""
    rng = np.random.RandomState(seed)
    batch, n, classes = 2, 300, 4
    prob = softmax(rng.randn(batch, n, classes + 1).astype(np.float32) * 3)
    box = (rng.randn(batch, n, 4) * 0.5).astype(np.float32)
    centers, sizes = rng.uniform(0, 1, (n, 2)), rng.uniform(0.05, 0.4, (n, 2))
    anchors = np.concatenate([centers - sizes / 2, centers + sizes / 2], 1)[None]
    anchors = anchors.astype(np.float32)
    ids, scores, boxes = decode_and_nms(
        prob, box, anchors, nms_topk=50, post_nms=60, score_thresh=0.05, image_size=(200, 100)
    )
    reference = detection_output(prob, box, anchors, 0.45, 50, 60, 0.05)
    for b in range(batch):
        count = len(reference[b])
        assert 0 < count <= 60 and (ids[b, count:] == -1).all()
        np.testing.assert_array_equal(ids[b, :count, 0], [d[0] for d in reference[b]])
        np.testing.assert_allclose(scores[b, :count, 0], [d[1] for d in reference[b]], rtol=1e-6)
        np.testing.assert_allclose(
            boxes[b, :count],
            np.array([d[2] for d in reference[b]]) * [200, 100, 200, 100],
            atol=1e-4,
        )


def test_decode_and_nms_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="anchors"):
        decode_and_nms(np.zeros((1, 10, 3)), np.zeros((1, 10, 4)), np.zeros((1, 9, 4)))


def test_cli_onnx(demo_net, tmp_path):
    _, params = demo_net
    proc = run_cli(
        "scripts/export_symbol.py",
        "--model",
        "ssd_demo",
        "--params",
        params,
        "--out",
        str(tmp_path / "cli" / "demo"),
        "--onnx",
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    line = proc.stdout.strip().splitlines()[-1]
    assert line.startswith("exported %s" % (tmp_path / "cli" / "demo.onnx"))
    assert "verified with onnxruntime + decode_and_nms" in line
    assert (tmp_path / "cli" / "demo.onnx").is_file()
    assert (tmp_path / "cli" / "demo-symbol.json").is_file()


def test_cli_onnx_check_failure_is_one_line_and_writes_nothing(demo_net, tmp_path):
    """onnxruntime unusable in the checking process: one error line, no .onnx left."""
    _, params = demo_net
    fake = tmp_path / "fake"
    fake.mkdir()
    (fake / "onnxruntime.py").write_text("raise ImportError('onnxruntime disabled by the test')\n")
    env = dict(
        os.environ,
        PYTHONPATH=os.pathsep.join(
            [str(fake)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
        ),
    )
    out = tmp_path / "cli"
    proc = run_cli(
        "scripts/export_symbol.py",
        "--model",
        "ssd_demo",
        "--params",
        params,
        "--out",
        str(out / "demo"),
        "--onnx",
        env=env,
    )
    assert proc.returncode == 1
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("error: %s: onnxruntime check" % (out / "demo.onnx"))
    assert "disabled by the test" in last and "Traceback" not in proc.stderr
    assert not [f for f in os.listdir(out) if ".onnx" in f]
