"""ONNX export of the network (no post-processing) and the NumPy decode + per-class NMS:
onnxruntime + decode_and_nms must give the Gluon detector's detections; and the end-to-end
ONNX file (network + decoding + per-class NMS in standard operators) must give them alone."""

import os

import mxnet as mx
import numpy as np
import pytest
from mxnet import autograd

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from ssd_gluon import get_model  # noqa: E402
from ssd_gluon.deploy.normalize import deploy_block  # noqa: E402
from ssd_gluon.deploy.onnx_nms import DETECTION_OUTPUTS, detection_model  # noqa: E402
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
    raw_line, detect_line = proc.stdout.strip().splitlines()[-2:]
    assert raw_line.startswith("exported %s " % (tmp_path / "cli" / "demo.onnx"))
    assert "verified with onnxruntime + decode_and_nms" in raw_line
    assert detect_line.startswith("exported %s " % (tmp_path / "cli" / "demo.detect.onnx"))
    assert "outputs ids, scores, boxes" in detect_line
    assert "(scores within 1e-05, boxes within 0.001 px)" in detect_line
    for name in ("demo.onnx", "demo.detect.onnx", "demo-symbol.json"):
        assert (tmp_path / "cli" / name).is_file()


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


# ---- the end-to-end file ---------------------------------------------------------------

# The operator types of ssd_demo's end-to-end graph (docs/deployment.md lists them): the
# network's, then the post-processing's; all of the standard domain.
NETWORK_OPS = {
    "BatchNormalization",
    "Concat",
    "Conv",
    "Div",
    "Flatten",
    "Identity",
    "MaxPool",
    "Mul",
    "Relu",
    "Reshape",
    "Softmax",
    "Sub",
    "Transpose",
}
DETECT_OPS = NETWORK_OPS | {
    "Add",
    "Cast",
    "Clip",
    "ConstantOfShape",
    "Exp",
    "Gather",
    "GatherND",
    "Greater",
    "NonMaxSuppression",
    "ScatterND",
    "Shape",
    "Slice",
    "Split",
    "TopK",
    "Unsqueeze",
    "Where",
}


@pytest.fixture(scope="module")
def demo_onnx(demo_net, tmp_path_factory):
    """Both ONNX files of the demo network, as ``export_onnx`` writes and verifies them."""
    net, _ = demo_net
    out = tmp_path_factory.mktemp("onnx_files")
    raw, detect = str(out / "demo.onnx"), str(out / "demo.detect.onnx")
    report = export_onnx(net, raw, 96, detect_path=detect)
    return raw, detect, report


def _images(batch, seed=11):
    """``batch`` different random RGB images 0-255, float32 (B, 3, 96, 96)."""
    return np.random.RandomState(seed).uniform(0, 255, (batch, 3, 96, 96)).astype(np.float32)


def _raw_detections(raw_path, images, **post):
    """onnxruntime on the raw-heads file + decode_and_nms with ``post``: the reference of the
    end-to-end graph on the very same network outputs."""
    probs, offsets, anchors = _session(raw_path).run(None, {"data": images})
    return probs, decode_and_nms(probs, offsets, anchors, image_size=(96, 96), **post)


def _assert_same_as_numpy(got, ref):
    """The end-to-end graph against decode_and_nms on the same raw outputs: identical ids and
    scores (same float32 values selected in the same order), boxes within 1e-3 px."""
    for name, g, r in zip(DETECTION_OUTPUTS, got, ref):
        assert g.shape == r.shape, name
    np.testing.assert_array_equal(got[0], ref[0])
    np.testing.assert_array_equal(got[1], ref[1])
    np.testing.assert_allclose(got[2], ref[2], atol=1e-3, rtol=0)


def test_detect_onnx_matches_mxnet_predictor(demo_net, demo_onnx):
    net, _ = demo_net
    raw, detect, report = demo_onnx
    assert report["detect_detections"] > 0 and report["detect_excused"] == 0
    assert report["detect_score_atol"] == 1e-5 and report["detect_box_atol"] == 1e-3
    assert sorted(os.listdir(os.path.dirname(detect))) == ["demo.detect.onnx", "demo.onnx"]

    images = _images(4)  # other images, another batch size than the export check's
    got = _session(detect).run(None, {"data": images})
    assert [g.shape for g in got] == [(4, 200, 1), (4, 200, 1), (4, 200, 4)]
    expected = [o.asnumpy() for o in deploy_block(net)(mx.nd.array(images))]
    matched, excused, problems = compare_detections(expected, got, atol=1e-5, box_atol=1e-3)
    assert not problems and excused == 0
    assert matched == (expected[0] >= 0).sum() > 100
    # Padding rows are -1 in all three outputs; boxes are input pixels.
    valid = got[0][..., 0] >= 0
    assert (got[1][~valid] == -1).all() and (got[2][~valid] == -1).all()
    assert (got[1][valid] > 0.01).all() and 0 <= got[2][valid].min() <= got[2][valid].max() <= 96
    _assert_same_as_numpy(got, _raw_detections(raw, images)[1])


def test_detect_onnx_keeps_nms_topk_candidates_per_class_before_nms(demo_net, demo_onnx, tmp_path):
    """Every class has many more candidates above the score threshold than nms_topk: the
    graph must keep the nms_topk best of each class before NMS (as the predictor does), not
    cap what survives NMS. Also the padded (fewer candidates than rows) and empty cases."""
    net, _ = demo_net
    raw, _, _ = demo_onnx
    images = _images(3, seed=5)
    raw_model = onnx.load(raw)
    settings = (
        dict(nms_topk=10, post_nms=30),  # C*K = 40 candidates >= 30 rows
        dict(nms_topk=10, post_nms=200),  # 40 candidates < 200 rows: padded in the graph
        dict(score_thresh=0.999),  # nothing passes: NonMaxSuppression selects nothing
    )
    for post in settings:
        path = str(tmp_path / "variant.onnx")
        onnx.save(detection_model(raw_model, **post), path)
        got = _session(path).run(None, {"data": images})
        probs, ref = _raw_detections(raw, images, **post)
        _assert_same_as_numpy(got, ref)
        if post.get("nms_topk") == 10:
            candidates = (probs[..., 1:] > 0.01).sum(axis=1)  # (B, C)
            assert candidates.min() > 10 * 10
            # The cap matters: NMS over the default 400 candidates keeps other boxes.
            uncapped = _raw_detections(raw, images, post_nms=post["post_nms"])[1]
            assert not np.array_equal(uncapped[2], got[2])
    assert (got[0] == -1).all() and (got[2] == -1).all()  # the empty case, last

    # The MXNet predictor at nms_topk=10 (its builtin path needs C*nms_topk >= post_nms).
    path = str(tmp_path / "variant.onnx")
    onnx.save(detection_model(raw_model, nms_topk=10, post_nms=30), path)
    got = _session(path).run(None, {"data": images})
    expected = deploy_block(net, nms_topk=10, post_nms=30)(mx.nd.array(images))
    expected = [o.asnumpy() for o in expected]
    matched, excused, problems = compare_detections(expected, got, atol=1e-5, box_atol=1e-3)
    assert not problems and excused == 0 and matched == 90

    # Through the export and its verification against the Gluon detector, nms_topk=60.
    report = export_onnx(
        net,
        str(tmp_path / "k60.onnx"),
        96,
        detect_path=str(tmp_path / "k60.detect.onnx"),
        nms_topk=60,
    )
    assert report["detect_detections"] > 0
    meta = _session(str(tmp_path / "k60.detect.onnx")).get_modelmeta().custom_metadata_map
    assert '"nms_topk": 60' in meta["postprocess"]


def test_detect_onnx_uses_standard_operators_at_opset_13(demo_onnx):
    _, detect, _ = demo_onnx
    model = onnx.load(detect)
    onnx.checker.check_model(model, full_check=True)
    assert [(o.domain, o.version) for o in model.opset_import] == [("", 13)]
    assert model.ir_version == 7
    assert {n.domain for n in model.graph.node} == {""}
    ops = {n.op_type for n in model.graph.node}
    assert ops == DETECT_OPS, sorted(ops)
    assert [i.name for i in model.graph.input] == ["data"]
    assert [o.name for o in model.graph.output] == list(DETECTION_OUTPUTS)
    # TensorRT's parser wants NonMaxSuppression's and TopK's parameters as initializers.
    inits = {t.name for t in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type == "NonMaxSuppression":
            assert set(node.input[2:]) <= inits and len(node.input) == 5
        if node.op_type == "TopK":
            assert node.input[1] in inits
    meta = {p.key: p.value for p in model.metadata_props}
    assert meta["data_shape"] == "96" and '"post_nms": 200' in meta["postprocess"]


def test_detect_onnx_runs_any_batch_size(demo_onnx):
    """One file, batches of 1 and 5: each image of the batch gets its batch-1 detections."""
    _, detect, _ = demo_onnx
    dims = onnx.load(detect).graph.input[0].type.tensor_type.shape.dim
    assert dims[0].dim_param == "batch" and [d.dim_value for d in dims[1:]] == [3, 96, 96]
    sess = _session(detect)
    images = _images(5, seed=3)
    batch = sess.run(None, {"data": images})
    assert [o.shape for o in batch] == [(5, 200, 1), (5, 200, 1), (5, 200, 4)]
    singles = [sess.run(None, {"data": images[i : i + 1]}) for i in range(5)]
    assert all(o[0].shape == (1, 200, 1) for o in singles)
    stacked = [np.concatenate([s[j] for s in singles]) for j in range(3)]
    matched, excused, problems = compare_detections(stacked, batch, atol=1e-5, box_atol=1e-3)
    assert not problems and excused == 0 and matched > 100


def test_verification_catches_a_wrong_detect_model(demo_net, demo_onnx, tmp_path):
    """A width/height variance 1% off in the end-to-end graph only: the raw check passes,
    the end-to-end one does not."""
    net, _ = demo_net
    raw, detect, _ = demo_onnx
    model = onnx.load(detect)
    var = next(t for t in model.graph.initializer if "variance_wh" in t.name)
    values = onnx.numpy_helper.to_array(var) * np.float32(1.01)
    var.CopyFrom(onnx.numpy_helper.from_array(values, var.name))
    bad = str(tmp_path / "bad.detect.onnx")
    onnx.save(model, bad)
    with pytest.raises(RuntimeError, match="bad.detect.onnx: the end-to-end graph differs"):
        verify_onnx(net, raw, 96, detect_path=bad)
