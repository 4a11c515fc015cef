"""Checking an export the way a deployment loads it, in a fresh interpreter where nothing of
this process (imported packages, loaded libraries) leaks into the check: the MXNet symbol
with MXNet alone, the ONNX file with onnxruntime + NumPy and MXNet made unimportable. Both
are compared with the Gluon detector they came from (``compare_detections`` pairs the rows
of two detector outputs, allowing for order swaps of tied scores)."""

import json
import os
import subprocess
import sys
import tempfile

import mxnet as mx
import numpy as np

from ..constants import POSTPROCESS
from ..model.box_coder import box_iou, decode_np
from ..model.weights import device_of
from ..utils.errors import CheckFailedError
from . import postprocess
from .normalize import ImageNormalizer, deploy_block

OUTPUT_NAMES = ("probs", "offsets", "anchors")


def run_in_fresh_process(script, image, failure, **args):
    """Run ``script`` with ``python -c`` and one JSON argument: ``args`` plus 'input' (a
    .npy holding ``image``) and 'output' (the .npz the script writes with ``np.savez``).
    Returns the saved arrays in order; a failing script raises CheckFailedError
    ``"<failure>: <its last stderr line>"``."""
    with tempfile.TemporaryDirectory() as tmp:
        np.save(os.path.join(tmp, "in.npy"), image)
        out = os.path.join(tmp, "out.npz")
        args = dict(args, input=os.path.join(tmp, "in.npy"), output=out)
        proc = subprocess.run(
            [sys.executable, "-c", script, json.dumps(args)], capture_output=True, text=True
        )
        if proc.returncode != 0:
            last = (proc.stderr.strip().splitlines() or ["(no message)"])[-1]
            raise CheckFailedError("%s: %s" % (failure, last))
        saved = np.load(out)
        return [saved["arr_%d" % i] for i in range(len(saved.files))]


# ---- the MXNet symbol ----------------------------------------------------------------------

# Runs in a fresh interpreter that imports only mxnet (and the ops library when given).
_SYMBOL_CHECK = r"""
import json, sys
import mxnet as mx, numpy as np
args = json.loads(sys.argv[1])
if args["library"]:
    mx.library.load(args["library"], verbose=False)
block = mx.gluon.SymbolBlock.imports(args["prefix"] + "-symbol.json", ["data"],
                                     args["prefix"] + "-0000.params")
image = np.load(args["input"])
outs = block(mx.nd.array(image, dtype=image.dtype))
np.savez(args["output"], *[o.asnumpy() for o in outs])
"""


def verify_export(
    net, prefix, data_shape, library=None, atol=1e-4, input_dtype="float32", **predictor_kwargs
):
    """Run the files of ``symbol.export_detector`` in a fresh process on a test image and
    compare with the Gluon detector. Returns the number of detections compared; raises
    CheckFailedError on a mismatch."""
    rng = np.random.RandomState(0)
    image = rng.uniform(0, 255, size=(1, 3, data_shape, data_shape)).astype(input_dtype)
    block = deploy_block(net, input_dtype, **predictor_kwargs)
    expected = [o.asnumpy() for o in block(mx.nd.array(image, dtype=input_dtype))]
    got = run_in_fresh_process(
        _SYMBOL_CHECK,
        image,
        "%s-symbol.json: reloading in a fresh process failed" % prefix,
        prefix=os.path.abspath(prefix),
        library=library,
    )
    for name, a, b in zip(("ids", "scores", "bboxes"), expected, got):
        if a.shape != b.shape or not np.allclose(a, b, atol=atol, rtol=1e-4):
            raise CheckFailedError(
                "%s: exported %s differ from the Gluon model (max diff %s)"
                % (
                    prefix,
                    name,
                    np.abs(a - b).max()
                    if a.shape == b.shape
                    else "shape %s vs %s" % (b.shape, a.shape),
                )
            )
    return int((expected[0] >= 0).sum())


# ---- the ONNX file ---------------------------------------------------------------------------

# Runs in a fresh interpreter where importing MXNet fails: the deployment path must need
# only onnxruntime, NumPy and this package's postprocess module.
_ONNX_CHECK = r"""
import json, sys
sys.modules["mxnet"] = None
args = json.loads(sys.argv[1])
sys.path.insert(0, args["package_root"])
import numpy as np, onnxruntime as ort
from ssd_gluon.deploy.postprocess import decode_and_nms
sess = ort.InferenceSession(args["model"], providers=["CPUExecutionProvider"])
image = np.load(args["input"])
raw = dict(zip([o.name for o in sess.get_outputs()], sess.run(None, {"data": image})))
meta = {k: json.loads(v) for k, v in sess.get_modelmeta().custom_metadata_map.items()}
dets = decode_and_nms(raw["probs"], raw["offsets"], raw["anchors"],
                      image_size=image.shape[:1:-1], **meta["postprocess"])
end_to_end = []
if args["detect_model"]:  # the whole batch, then its first image alone (dynamic batch)
    det = ort.InferenceSession(args["detect_model"], providers=["CPUExecutionProvider"])
    end_to_end = det.run(None, {"data": image}) + det.run(None, {"data": image[:1]})
np.savez(args["output"], raw["probs"], raw["offsets"], raw["anchors"], *dets, *end_to_end)
"""

# The end-to-end file against the Gluon detector: scores within DETECT_SCORE_ATOL, boxes
# within DETECT_BOX_ATOL input pixels (outside the tie cases of ``compare_detections``), or
# within the difference the network's raw outputs already have when it is larger: the graph
# only selects among those values, so it cannot be closer (untrained VGG heads reach 3e-5).
DETECT_SCORE_ATOL = 1e-5
DETECT_BOX_ATOL = 1e-3


def _run_onnx_check(model_path, image, detect_path=None):
    """Run ``_ONNX_CHECK`` on ``image``; returns the raw outputs and the detections, then
    with ``detect_path`` the end-to-end model's detections of the batch and of its first
    image alone."""
    package_root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    return run_in_fresh_process(
        _ONNX_CHECK,
        image,
        "%s: onnxruntime check in a fresh process failed" % model_path,
        model=os.path.abspath(model_path),
        detect_model=os.path.abspath(detect_path) if detect_path else None,
        package_root=package_root,
    )


def verify_onnx(
    net,
    model_path,
    data_shape,
    atol=1e-4,
    rtol=1e-4,
    batch=2,
    detect_path=None,
    **predictor_kwargs,
):
    """Check ``model_path`` in a fresh process without MXNet (onnxruntime + NumPy
    ``decode_and_nms``) against the Gluon detector (``deploy_block``) and the network's raw
    outputs, on ``batch`` random images. With ``detect_path`` (the end-to-end model built
    from ``model_path``), the same process runs it on the batch and on its first image
    alone: both must give the Gluon detector's detections within ``DETECT_SCORE_ATOL`` and
    ``DETECT_BOX_ATOL`` pixels (or the raw outputs' measured difference, decoded, when
    larger). Returns a dict with the number of detections compared and the largest raw
    differences (and the end-to-end counts and tolerances); raises CheckFailedError on a
    mismatch."""
    rng = np.random.RandomState(0)
    image = rng.uniform(0, 255, size=(batch, 3, data_shape, data_shape)).astype(np.float32)
    x = mx.nd.array(image, ctx=device_of(net))
    expected = [o.asnumpy() for o in deploy_block(net, **predictor_kwargs)(x)]
    normalizer = ImageNormalizer(prefix="onnx_check_")
    normalizer.initialize(ctx=x.context)
    cls_preds, box_preds, anchors = net(normalizer(x))
    raw_expected = [
        mx.nd.softmax(cls_preds, axis=-1).asnumpy(),
        box_preds.asnumpy(),
        anchors.asnumpy(),
    ]
    got = _run_onnx_check(model_path, image, detect_path)
    diffs = {}
    for name, a, b in zip(OUTPUT_NAMES, raw_expected, got[:3]):
        if a.shape != b.shape:
            raise CheckFailedError(
                "%s: ONNX output %s has shape %s, MXNet %s" % (model_path, name, b.shape, a.shape)
            )
        diffs[name] = float(np.abs(a - b).max())
        # Float32 sums of large terms that cancel carry errors relative to the terms, not to
        # the result: the relative part of the tolerance scales with the output's magnitude.
        tol = atol + rtol * float(np.abs(a).max())
        if diffs[name] > tol:
            raise CheckFailedError(
                "%s: ONNX output %s differs from MXNet by %.3g (> %.3g)"
                % (model_path, name, diffs[name], tol)
            )
    # Two candidates whose MXNet scores differ by less than twice the measured noise may be
    # ordered either way by the two runtimes (untrained networks saturate at exactly 1.0).
    post = postprocess.settings(**predictor_kwargs)
    tied = _tie_test(raw_expected[0], 2 * diffs["probs"] + 1e-7, post["score_thresh"])
    matched, excused, problems = compare_detections(
        expected, got[3:6], atol=atol, tied=tied, nms_thresh=post["nms_thresh"]
    )
    if problems:
        raise CheckFailedError(
            "%s: onnxruntime + decode_and_nms differ from the Gluon "
            "detector: %s%s"
            % (
                model_path,
                problems[0],
                " (and %d more image(s))" % (len(problems) - 1) if len(problems) > 1 else "",
            )
        )
    report = dict(
        detections=matched,
        excused=excused,
        images=batch,
        **{"max_diff_" + k: v for k, v in diffs.items()},
    )
    if detect_path is not None:
        # What the raw outputs' differences alone move a box by, in input pixels.
        box_noise = data_shape * np.abs(
            decode_np(got[1], raw_expected[2]) - decode_np(raw_expected[1], raw_expected[2])
        ).max(initial=0)
        score_atol = max(DETECT_SCORE_ATOL, diffs["probs"])
        box_atol = max(DETECT_BOX_ATOL, float(box_noise))
        report.update(
            _check_end_to_end(
                detect_path, expected, got[6:9], got[9:12], tied, post, score_atol, box_atol
            ),
            detect_score_atol=score_atol,
            detect_box_atol=box_atol,
        )
    return report


def _check_end_to_end(path, expected, batch_out, single_out, tied, post, score_atol, box_atol):
    """The end-to-end model's detections of the batch (``batch_out``) and of its first image
    alone (``single_out``) against the Gluon detector's ``expected``, scores within
    ``score_atol``, boxes within ``box_atol`` pixels; returns the counts."""
    counts = {}
    for name, got, ref in (
        ("batch", batch_out, expected),
        ("single", single_out, [a[:1] for a in expected]),
    ):
        if [a.shape for a in got] != [a.shape for a in ref]:
            raise CheckFailedError(
                "%s: outputs of shapes %s, the Gluon detector's %s"
                % (path, [a.shape for a in got], [a.shape for a in ref])
            )
        matched, excused, problems = compare_detections(
            ref,
            got,
            atol=score_atol,
            box_atol=box_atol,
            tied=tied,
            nms_thresh=post["nms_thresh"],
        )
        if problems:
            raise CheckFailedError(
                "%s: the end-to-end graph%s differs from the Gluon detector: %s"
                % (path, " (on one image)" if name == "single" else "", problems[0])
            )
        counts[name] = (matched, excused)
    return dict(detect_detections=counts["batch"][0], detect_excused=counts["batch"][1])


# ---- comparing two detector outputs --------------------------------------------------------


def _pair_rows(e, g, atol, box_atol):
    """Pair the valid rows of one image's detections ``e`` and ``g`` (each a tuple of ids
    (K,), scores (K,), boxes (K, 4)) by class, closest score within ``atol`` and box within
    ``box_atol``. Returns (number paired, unpaired rows of e, unpaired rows of g)."""
    free = [j for j in range(len(g[0])) if g[0][j] >= 0]
    lonely = []
    for i in np.flatnonzero(e[0] >= 0):
        near = [
            j
            for j in free
            if g[0][j] == e[0][i]
            and abs(g[1][j] - e[1][i]) <= atol
            and np.abs(g[2][j] - e[2][i]).max() <= box_atol
        ]
        if not near:
            lonely.append(i)
            continue
        free.remove(min(near, key=lambda j: abs(g[1][j] - e[1][i])))
    paired = int((e[0] >= 0).sum()) - len(lonely)
    return paired, lonely, free


def _excuse(rows, sides, tied, nms_thresh, atol):
    """Which unpaired rows ``(side, cls, score, box)`` (sorted by decreasing score) are
    explained by numerical noise rather than by a real difference: a score ``tied(cls,
    score)`` (its order against another candidate, or against the score threshold, was
    decided by noise); a box that overlaps an excused, higher-scored box of its class by more
    than ``nms_thresh`` (the NMS cascade of such a swap); or a row below the other output's
    last score when that output is full (pushed out by an excused row above it). Returns
    the rows not excused."""
    excused, left = [], []
    for side, cls, score, box in rows:
        other = sides[1 - side]
        ok = (
            tied(cls, score)
            or any(
                c == cls and s >= score and box_iou(b[None], box[None])[0, 0] > nms_thresh
                for _, c, s, b in excused
            )
            or ((other[0] >= 0).all() and score <= other[1].min() + atol)
        )
        (excused if ok else left).append((side, cls, score, box))
    return left


def compare_detections(
    expected, got, atol=1e-4, box_atol=None, tied=None, nms_thresh=POSTPROCESS["nms_thresh"]
):
    """Compare two detector outputs ``(ids, scores, boxes)`` of shapes (B, K, 1/1/4),
    padded with -1. Rows are paired by class and closest score (an order swap of two
    near-equal scores is no difference), scores within ``atol``, boxes within ``box_atol``
    (default ``atol`` times the largest coordinate, at least 1). ``tied(image, cls, score)``
    says whether a score lies within numerical noise of another candidate's or of the score
    threshold; unpaired rows explained by such ties are excused (see ``_excuse``).
    Returns ``(paired, excused, problems)``, problems a list of messages."""
    # ids and scores (B, K, 1) -> (B, K); boxes stay (B, K, 4).
    e_all = [np.asarray(a) for a in expected]
    g_all = [np.asarray(a) for a in got]
    e_all[:2], g_all[:2] = [a[..., 0] for a in e_all[:2]], [a[..., 0] for a in g_all[:2]]
    if box_atol is None:
        box_atol = atol * max(1.0, float(np.abs(e_all[2]).max(initial=0)))
    paired = excused = 0
    problems = []
    for b in range(e_all[0].shape[0]):
        e, g = [a[b] for a in e_all], [a[b] for a in g_all]
        n, lonely_e, lonely_g = _pair_rows(e, g, atol, box_atol)
        rows = sorted(
            [(0, e[0][i], e[1][i], e[2][i]) for i in lonely_e]
            + [(1, g[0][j], g[1][j], g[2][j]) for j in lonely_g],
            key=lambda r: -r[2],
        )
        is_tied = (lambda c, s: tied(b, c, s)) if tied else (lambda c, s: False)
        left = _excuse(rows, (e, g), is_tied, nms_thresh, atol)
        paired, excused = paired + n, excused + len(rows) - len(left)
        if left:
            side, cls, score, box = left[0]
            box = np.round(np.asarray(box, float), 2).tolist()
            problems.append(
                "image %d: %d detection(s) without a counterpart, e.g. class %d "
                "score %.6f box %s only in the %s output"
                % (b, len(left), cls, score, box, ("reference", "checked")[side])
            )
    return paired, excused, problems


def _tie_test(probs, noise, score_thresh):
    """``tied(image, cls, score)`` for ``compare_detections``: whether ``score`` is within
    ``noise`` of the threshold or of the probabilities (B, N, C+1) of two or more anchors
    (then which of them NMS keeps, or whether it passes, depends on noise)."""

    def tied(b, cls, score):
        column = probs[b, :, int(cls) + 1]
        return (
            abs(score - score_thresh) <= noise or int((np.abs(column - score) <= noise).sum()) >= 2
        )

    return tied
