"""GPU check of the CUDA kernels (ops/*.cu) against the CPU ones of the same library.

Run through tests/gpu/run.sh, which builds ``--kernels-only`` with CUDA and points
SSD_KERNELS_LIB at it. Needs an NVIDIA GPU and PyTorch or CuPy for device memory; MXNet is
not used. Without a library path, a device or either package the module is skipped, so a
plain ``pytest tests`` on a CPU machine passes over it.

Every CUDA launcher is compared with the CPU function of the same parameters on random
inputs (exact class columns, close boxes), then ``test_timing`` prints milliseconds per call
at SSD300 sizes.
"""

import ctypes
import os
import statistics
import time

import numpy as np
import pytest

LIB = os.environ.get("SSD_KERNELS_LIB", "")

if not LIB:
    pytest.skip(
        "SSD_KERNELS_LIB is not set (tests/gpu/run.sh builds the library and sets it)",
        allow_module_level=True,
    )
if not os.path.isfile(LIB):
    pytest.skip("SSD_KERNELS_LIB=%s does not exist" % LIB, allow_module_level=True)


class TorchDevice:
    """Device memory, streams and events through PyTorch."""

    name = "torch"

    def __init__(self, torch):
        self.torch = torch

    def put(self, a):
        return self.torch.from_numpy(np.ascontiguousarray(a, np.float32)).to("cuda")

    def full(self, shape, value):
        return self.torch.full(shape, value, dtype=self.torch.float32, device="cuda")

    def scratch(self, nbytes):
        # Filled with a byte pattern, not zeros: the kernels must not rely on a clean workspace.
        return self.torch.full((max(int(nbytes), 1),), 0xA5, dtype=self.torch.uint8, device="cuda")

    def ptr(self, x):
        return x.data_ptr()

    def get(self, x):
        return x.cpu().numpy()

    def stream(self):
        return self.torch.cuda.current_stream().cuda_stream

    def sync(self):
        self.torch.cuda.synchronize()

    def elapsed_ms(self, fn):
        start = self.torch.cuda.Event(enable_timing=True)
        end = self.torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        return start.elapsed_time(end)


class CupyDevice:
    """The same through CuPy."""

    name = "cupy"

    def __init__(self, cupy):
        self.cp = cupy

    def put(self, a):
        return self.cp.asarray(np.ascontiguousarray(a, np.float32))

    def full(self, shape, value):
        return self.cp.full(shape, value, dtype=self.cp.float32)

    def scratch(self, nbytes):
        return self.cp.full((max(int(nbytes), 1),), 0xA5, dtype=self.cp.uint8)

    def ptr(self, x):
        return x.data.ptr

    def get(self, x):
        return self.cp.asnumpy(x)

    def stream(self):
        return self.cp.cuda.get_current_stream().ptr

    def sync(self):
        self.cp.cuda.Device().synchronize()

    def elapsed_ms(self, fn):
        start, end = self.cp.cuda.Event(), self.cp.cuda.Event()
        start.record()
        fn()
        end.record()
        end.synchronize()
        return self.cp.cuda.get_elapsed_time(start, end)


def _find_device():
    try:
        import torch

        if torch.cuda.is_available():
            return TorchDevice(torch)
    except ImportError:
        pass
    try:
        import cupy

        if cupy.cuda.runtime.getDeviceCount() > 0:
            return CupyDevice(cupy)
    except Exception:  # ImportError, or CUDA errors of a CuPy without a usable driver
        pass
    return None


DEV = _find_device()
if DEV is None:
    pytest.skip("no CUDA device through PyTorch or CuPy", allow_module_level=True)


# Only numpy and ctypes below this point: no MXNet on the GPU machine.
from ssd_gluon.model.box_coder import decode_np  # noqa: E402

import kernels as kb  # noqa: E402  (tests/gpu/kernels.py)

K = kb.Kernels(LIB)


@pytest.fixture(autouse=True)
def _library_has_cuda():
    assert K.has_cuda, "%s was built without the CUDA launchers (nvcc not found?)" % LIB


# ---- calling the CUDA launchers ---------------------------------------------------------


def _check(rc, what):
    assert rc == 0, "%s: CUDA error %d" % (what, rc)


def prior_cuda(p):
    per_cell = p.num_sizes + p.num_ratios - 1
    out = DEV.full((p.height * p.width * per_cell, 4), float("nan"))
    _check(K.prior_cuda(p, DEV.ptr(out), DEV.stream()), "prior")
    return DEV.get(out)


class TargetRun:
    """Device copies of one target problem, so that timing repeats only the launch."""

    def __init__(self, p, anchors, labels, cls_preds):
        self.p = p
        self.inputs = [DEV.put(anchors), DEV.put(labels), DEV.put(cls_preds)]
        b, n = p.batch, p.num_anchors
        # NaN-filled outputs: anything the kernels fail to write shows up in the comparison.
        self.outputs = [
            DEV.full((b, n * 4), float("nan")),
            DEV.full((b, n * 4), float("nan")),
            DEV.full((b, n), float("nan")),
        ]
        self.ws = DEV.scratch(K.target_workspace_bytes(p))

    def launch(self):
        _check(
            K.target_cuda(
                self.p,
                *[DEV.ptr(x) for x in self.inputs + self.outputs],
                DEV.ptr(self.ws),
                DEV.stream(),
            ),
            "target",
        )

    def result(self):
        self.launch()
        return [DEV.get(x) for x in self.outputs]


class DetectionRun:
    def __init__(self, p, cls_prob, loc_pred, anchors):
        self.p = p
        self.inputs = [DEV.put(cls_prob), DEV.put(loc_pred), DEV.put(anchors)]
        rows = K.lib.ssd_detection_rows(ctypes.byref(p))
        self.out = DEV.full((p.batch, rows, 6), float("nan"))
        self.ws = DEV.scratch(K.detection_workspace_bytes(p))

    def launch(self):
        _check(
            K.detection_cuda(
                self.p,
                *[DEV.ptr(x) for x in self.inputs],
                DEV.ptr(self.out),
                DEV.ptr(self.ws),
                DEV.stream(),
            ),
            "detection",
        )

    def result(self):
        self.launch()
        return DEV.get(self.out)


# ---- random problems --------------------------------------------------------------------


def random_boxes(rng, count, grid=0, min_size=0.02, max_size=0.6):
    """Corner boxes around [0, 1]^2. ``grid``: coordinates on multiples of 1/grid, so that
    areas and IoUs are exact in float32 (no rounding, hence exact ties on both sides)."""
    cx, cy = rng.uniform(0, 1, (2, count))
    w, h = rng.uniform(min_size, max_size, (2, count))
    boxes = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], 1)
    if grid:
        boxes = np.round(boxes * grid) / grid
    return boxes.astype(np.float32)


def make_anchors(rng, kind, n):
    if kind == "grid":  # exact arithmetic, with duplicates and a zero-area anchor
        a = random_boxes(rng, n, grid=64)
        # Duplicates at offsets that land in the same thread of a block (32 .. 1024 apart) as
        # well as in neighbouring ones: equal IoUs that only the anchor order may decide.
        for j in rng.choice(n, max(1, n // 50), replace=False):
            for off in (1, 32, 64, 256, 1024):
                if j + off < n:
                    a[j + off] = a[j]
        if n > 4:
            a[3, 2] = a[3, 0]
        return a
    if kind == "random":
        return random_boxes(rng, n)
    if kind == "prior":  # MultiBoxPrior layout of a small feature map: many near-equal IoUs
        side = max(1, int(round((n / 4) ** 0.5)))
        return K.prior_cpu(kb.prior_params(side, side, sizes=(0.3, 0.45), ratios=(1, 2, 0.5)))
    raise ValueError(kind)


def make_labels(rng, anchors, batch, rows, max_gt, width, classes, grid):
    """(B, M, W) labels: up to max_gt valid rows scattered among -1 padding rows, with
    duplicated ground truths, ground truths equal to an anchor, zero-area boxes and padding
    rows that carry a box."""
    labels = np.full((batch, rows, width), -1, np.float32)
    for b in range(batch):
        g = int(rng.integers(0, min(max_gt, rows) + 1))
        where = rng.choice(rows, g, replace=False)
        boxes = random_boxes(rng, g, grid=grid)
        for i in range(g):
            r = rng.random()
            if r < 0.15 and i > 0:
                boxes[i] = boxes[i - 1]
            elif r < 0.3:
                boxes[i] = anchors[rng.integers(len(anchors))]
            elif r < 0.36:
                boxes[i, 2] = boxes[i, 0]  # zero width: not a valid ground truth
        labels[b, where, 0] = rng.integers(0, classes - 1, g)
        labels[b, where, 1:5] = boxes
        pad = np.setdiff1d(np.arange(rows), where)
        if len(pad):
            labels[b, pad[:1], 1:5] = random_boxes(rng, 1)  # class -1: ignored all the same
        if width > 5:
            labels[b, :, 5:] = rng.integers(0, 2, (rows, width - 5))
    return labels


def make_logits(rng, batch, classes, n, ties):
    if ties:  # few distinct values: equal background probabilities, ties broken by index
        return rng.integers(-1, 2, (batch, classes, n)).astype(np.float32)
    return rng.normal(0, 1.5, (batch, classes, n)).astype(np.float32)


def softmax(logits, axis=1):
    e = np.exp(logits - logits.max(axis=axis, keepdims=True))
    return (e / e.sum(axis=axis, keepdims=True)).astype(np.float32)


TARGET_SETTINGS = {
    "builtin": {},  # MXNet's defaults: no mining, every unmatched anchor negative
    "train": dict(negative_mining_ratio=3.0, negative_mining_thresh=0.5),
    "no_threshold": dict(
        overlap_threshold=0.0, negative_mining_ratio=3.0, minimum_negative_samples=5
    ),
    "minimum": dict(
        overlap_threshold=0.3,
        negative_mining_ratio=0.5,
        negative_mining_thresh=0.4,
        minimum_negative_samples=50,
        ignore_label=-2.0,
    ),
}

# (seed, batch, anchor kind, N, label rows, max ground truths, label width, classes, settings)
TARGET_CASES = [
    (0, 1, "grid", 1, 1, 1, 5, 2, "builtin"),
    (1, 2, "grid", 7, 3, 3, 5, 3, "train"),
    (2, 4, "grid", 300, 8, 0, 5, 4, "train"),
    (3, 4, "grid", 300, 1, 1, 6, 5, "train"),
    (4, 3, "grid", 300, 12, 12, 5, 21, "builtin"),
    (5, 8, "grid", 2000, 20, 20, 6, 21, "train"),
    (6, 3, "grid", 2000, 20, 20, 5, 21, "no_threshold"),
    (7, 3, "grid", 1500, 40, 40, 5, 8, "minimum"),
    (8, 2, "random", 1000, 10, 10, 5, 21, "train"),
    (9, 5, "random", 3000, 6, 6, 5, 21, "minimum"),
    (10, 4, "prior", 400, 10, 10, 5, 21, "train"),
    (11, 4, "prior", 2500, 15, 15, 6, 21, "train"),
    (12, 2, "prior", 2500, 15, 15, 5, 21, "builtin"),
    (13, 6, "grid", 1025, 33, 33, 5, 21, "train"),  # > one block of anchors and > one warp of gts
]


def _mismatch(a, b):
    bad = np.argwhere(a != b)
    return "%d mismatches, first at %s: cuda %s vs cpu %s" % (
        len(bad),
        tuple(bad[0]),
        a[tuple(bad[0])],
        b[tuple(bad[0])],
    )


def check_target(p, anchors, labels, preds):
    cpu = K.target_cpu(p, anchors, labels, preds)
    gpu = TargetRun(p, anchors, labels, preds).result()
    names = ("loc_target", "loc_mask", "cls_target")
    for name, g, c in zip(names[1:], gpu[1:], cpu[1:]):
        assert np.array_equal(g, c), "%s: %s" % (name, _mismatch(g, c))
    np.testing.assert_allclose(gpu[0], cpu[0], rtol=1e-5, atol=1e-5, err_msg="loc_target")
    return cpu


@pytest.mark.parametrize("case", TARGET_CASES, ids=lambda c: "seed%d-%s" % (c[0], c[-1]))
def test_target_matches_cpu(case):
    seed, batch, kind, n, rows, max_gt, width, classes, setting = case
    rng = np.random.default_rng(seed)
    anchors = make_anchors(rng, kind, n)
    grid = 64 if kind == "grid" else 0
    labels = make_labels(rng, anchors, batch, rows, max_gt, width, classes, grid)
    for ties in (False, True):
        preds = make_logits(rng, batch, classes, len(anchors), ties)
        p = kb.target_params(batch, len(anchors), rows, width, classes, **TARGET_SETTINGS[setting])
        check_target(p, anchors, labels, preds)


def test_target_covers_positives_and_negatives():
    rng = np.random.default_rng(42)
    anchors = make_anchors(rng, "grid", 500)
    labels = make_labels(rng, anchors, 4, 10, 10, 5, 21, 64)
    labels[0, 0] = [3, 0.1, 0.1, 0.5, 0.5]  # at least one valid ground truth
    preds = make_logits(rng, 4, 21, 500, False)
    cls = check_target(
        kb.target_params(4, 500, 10, 5, 21, **TARGET_SETTINGS["train"]), anchors, labels, preds
    )[2]
    assert (cls > 0).any() and (cls == 0).any() and (cls == -1).any()


# ---- prior ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "shape,sizes,ratios,steps,offsets,clip",
    [
        ((1, 1), (0.5,), (1.0,), (-1, -1), (0.5, 0.5), False),
        ((38, 38), (0.1, 0.141), (1, 2, 0.5), (-1, -1), (0.5, 0.5), False),
        ((19, 10), (0.2, 0.272), (1, 2, 0.5, 3, 1 / 3), (-1, -1), (0.5, 0.5), True),
        ((5, 7), (0.9, 0.3, 0.1), (1, 4, 0.25), (0.2, 0.15), (0.3, 0.7), True),
        (
            (3, 3),
            tuple(np.linspace(0.1, 0.9, 32)),
            tuple(np.linspace(0.5, 2, 32)),
            (-1, -1),
            (0.5, 0.5),
            False,
        ),
    ],
)
def test_prior_matches_cpu(shape, sizes, ratios, steps, offsets, clip):
    p = kb.prior_params(shape[0], shape[1], sizes, ratios, steps, offsets, clip)
    np.testing.assert_allclose(prior_cuda(p), K.prior_cpu(p), rtol=1e-6, atol=1e-6)


def test_prior_rejects_too_many_values():
    p = kb.prior_params(2, 2, sizes=tuple(np.linspace(0.1, 0.9, 33)))
    out = DEV.full((2 * 2 * 33, 4), 0.0)
    assert K.prior_cuda(p, DEV.ptr(out), DEV.stream()) != 0


# ---- detection --------------------------------------------------------------------------

BEST_CLASS_SETTINGS = {
    "builtin": dict(),
    "topk_force": dict(threshold=0.3, nms_threshold=0.45, nms_topk=50, force_suppress=True),
    "no_nms": dict(nms_threshold=0.0),
    "invalid_nms": dict(nms_threshold=1.5, threshold=0.2),
    "background2": dict(background_id=2, clip=False, nms_topk=700),
}
PER_CLASS_SETTINGS = {
    "ssd": dict(nms_threshold=0.45, nms_topk=400, keep_topk=200),
    "all": dict(threshold=0.05, nms_threshold=0.5, nms_topk=-1, keep_topk=-1),
    "small": dict(background_id=1, nms_topk=5, keep_topk=7, clip=False),
    "sparse": dict(threshold=0.6, nms_topk=100, keep_topk=200),
}

# (seed, batch, classes, N, anchors on the grid with zero offsets (exact), quantized scores)
DETECTION_DATA = [
    (0, 1, 2, 1, True, False),
    (1, 2, 3, 50, True, True),
    (2, 3, 21, 700, False, False),
    (3, 2, 21, 2000, True, True),
    (4, 4, 6, 1500, False, True),
    (5, 2, 21, 3000, False, False),
]


def make_detection(seed, batch, classes, n, exact, quantized):
    rng = np.random.default_rng(seed)
    anchors = make_anchors(rng, "grid" if exact else "random", n)
    if exact:  # decoding is exact, so every IoU (and tie) is the same on both sides
        loc = np.zeros((batch, n * 4), np.float32)
    else:
        loc = rng.normal(0, 0.5, (batch, n * 4)).astype(np.float32)
    logits = rng.normal(0, 2.0, (batch, classes, n))
    logits[:, 0] += 1.5  # background heavy, as a trained model
    prob = softmax(logits)
    if quantized:  # equal scores: the index / class order decides
        prob = (np.round(prob * 32) / 32).astype(np.float32)
    return prob, loc, anchors


def check_detection(p, prob, loc, anchors):
    cpu = K.detection_cpu(p, prob, loc, anchors)
    gpu = DetectionRun(p, prob, loc, anchors).result()
    assert gpu.shape == cpu.shape
    assert np.array_equal(gpu[..., 0], cpu[..., 0]), "class: " + _mismatch(gpu[..., 0], cpu[..., 0])
    np.testing.assert_allclose(gpu[..., 1:], cpu[..., 1:], rtol=1e-5, atol=1e-5)
    return cpu


DETECTION_SETTINGS = [(False, name) for name in sorted(BEST_CLASS_SETTINGS)] + [
    (True, name) for name in sorted(PER_CLASS_SETTINGS)
]


@pytest.mark.parametrize(
    "per_class, setting",
    DETECTION_SETTINGS,
    ids=lambda v: ("per_class" if v else "best_class") if isinstance(v, bool) else v,
)
@pytest.mark.parametrize("data", DETECTION_DATA, ids=lambda d: "seed%d" % d[0])
def test_detection_matches_cpu(data, per_class, setting):
    prob, loc, anchors = make_detection(*data)
    batch, classes, n = prob.shape
    cfg = dict((PER_CLASS_SETTINGS if per_class else BEST_CLASS_SETTINGS)[setting])
    if cfg.get("background_id", 0) >= classes:
        cfg["background_id"] = classes - 1
    check_detection(
        kb.detection_params(batch, classes, n, per_class=per_class, **cfg), prob, loc, anchors
    )


def test_detection_keeps_and_suppresses():
    prob, loc, anchors = make_detection(3, 2, 21, 2000, True, True)
    for per_class in (False, True):  # keep_topk -1: every survivor, so rows stay free
        p = kb.detection_params(
            2, 21, 2000, threshold=0.2, per_class=per_class, nms_topk=400, keep_topk=-1
        )
        out = check_detection(p, prob, loc, anchors)
        kept = out[..., 0] >= 0
        assert kept.any() and (~kept).any()


# ---- timing -----------------------------------------------------------------------------


def ssd300_anchors():
    """The 8732 anchors of SSD300 (VGG16): feature maps 38..1, two sizes each, ratios
    (1, 2, 1/2) on the first and the last two maps, (1, 2, 1/2, 3, 1/3) elsewhere."""
    maps = [38, 19, 10, 5, 3, 1]
    sizes = [(0.1, 0.141), (0.2, 0.272), (0.37, 0.447), (0.54, 0.619), (0.71, 0.79), (0.88, 0.961)]
    out = []
    for i, (side, size) in enumerate(zip(maps, sizes)):
        ratios = (1, 2, 0.5) if i in (0, 4, 5) else (1, 2, 0.5, 3, 1 / 3)
        out.append(K.prior_cpu(kb.prior_params(side, side, size, ratios)))
    anchors = np.concatenate(out)
    assert len(anchors) == 8732
    return anchors


def median_cpu_ms(fn, repeat):
    fn()
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1e3)
    return statistics.median(times)


def median_cuda_ms(fn, repeat, warmup=3):
    for _ in range(warmup):
        fn()
    DEV.sync()
    return statistics.median(DEV.elapsed_ms(fn) for _ in range(repeat))


def torchvision_reference(p, prob, loc, anchors, repeat):
    """ms of torchvision.ops.batched_nms over the same per-class candidates (the top
    nms_topk above the threshold of every image and class), and its survivors per image;
    None without torchvision (or without PyTorch)."""
    try:
        import torch
        import torchvision
    except ImportError:
        return None
    boxes_all = decode_np(loc.reshape(loc.shape[0], -1, 4), anchors[None], clip=bool(p.clip))
    boxes, scores, groups = [], [], []
    for b in range(p.batch):
        for c in range(p.num_classes):
            if c == p.background_id:
                continue
            s = prob[b, c]
            idx = np.nonzero(s > p.threshold)[0]
            idx = idx[np.lexsort((idx, -s[idx]))][: p.nms_topk if p.nms_topk > 0 else None]
            boxes.append(boxes_all[b, idx])
            scores.append(s[idx])
            groups.append(np.full(len(idx), b * p.num_classes + c))
    boxes = torch.from_numpy(np.concatenate(boxes).astype(np.float32)).cuda()
    scores = torch.from_numpy(np.concatenate(scores).astype(np.float32)).cuda()
    groups = torch.from_numpy(np.concatenate(groups)).cuda()

    def nms():
        return torchvision.ops.batched_nms(boxes, scores, groups, p.nms_threshold)

    for _ in range(3):
        nms()
    torch.cuda.synchronize()
    times = []
    for _ in range(repeat):
        start = torch.cuda.Event(enable_timing=True)
        end = torch.cuda.Event(enable_timing=True)
        start.record()
        nms()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end))
    keep = nms().cpu().numpy()
    survivors = np.bincount(groups.cpu().numpy()[keep] // p.num_classes, minlength=p.batch)
    return statistics.median(times), survivors


def test_timing():
    rng = np.random.default_rng(2024)
    anchors = ssd300_anchors()
    n = len(anchors)
    table = []

    # Target: a training batch, up to 10 ground truths per image, with mining.
    batch, classes = 32, 21
    labels = make_labels(rng, anchors, batch, 10, 10, 5, classes, 0)
    labels[:, 0] = [1, 0.2, 0.2, 0.6, 0.7]  # every image has at least one object
    preds = make_logits(rng, batch, classes, n, False)
    p = kb.target_params(batch, n, 10, 5, classes, **TARGET_SETTINGS["train"])
    check_target(p, anchors, labels, preds)
    run = TargetRun(p, anchors, labels, preds)
    table.append(
        (
            "target B=32 N=8732 M=10 (mining 3:1)",
            median_cpu_ms(lambda: K.target_cpu(p, anchors, labels, preds), 5),
            median_cuda_ms(run.launch, 20),
            None,
        )
    )

    # Detection, per-class mode as in the paper's evaluation.
    batch = 8
    logits = rng.normal(0, 2.0, (batch, classes, n))
    logits[:, 0] += 3.0
    prob = softmax(logits)
    loc = rng.normal(0, 0.5, (batch, n * 4)).astype(np.float32)
    p = kb.detection_params(
        batch,
        classes,
        n,
        threshold=0.01,
        nms_threshold=0.45,
        nms_topk=400,
        per_class=True,
        keep_topk=200,
    )
    check_detection(p, prob, loc, anchors)
    run = DetectionRun(p, prob, loc, anchors)
    ref = torchvision_reference(p, prob, loc, anchors, 20)
    table.append(
        (
            "detection per-class B=8 C=21 topk=400 keep=200",
            median_cpu_ms(lambda: K.detection_cpu(p, prob, loc, anchors), 5),
            median_cuda_ms(run.launch, 20),
            ref[0] if ref else None,
        )
    )
    if ref:
        # Survivors before keep_topk: ours with keep_topk <= 0 keeps every one of them.
        p_all = kb.detection_params(
            batch,
            classes,
            n,
            threshold=0.01,
            nms_threshold=0.45,
            nms_topk=400,
            per_class=True,
            keep_topk=-1,
        )
        ours = (DetectionRun(p_all, prob, loc, anchors).result()[..., 0] >= 0).sum(1)
        print(
            "\nNMS survivors per image: ours %s, torchvision %s" % (ours.tolist(), ref[1].tolist())
        )

    # Detection, best-class mode (MultiBoxDetection's output), for completeness.
    p = kb.detection_params(batch, classes, n, threshold=0.01, nms_threshold=0.45, nms_topk=400)
    check_detection(p, prob, loc, anchors)
    run = DetectionRun(p, prob, loc, anchors)
    table.append(
        (
            "detection best-class B=8 C=21 topk=400",
            median_cpu_ms(lambda: K.detection_cpu(p, prob, loc, anchors), 5),
            median_cuda_ms(run.launch, 20),
            None,
        )
    )

    threads = os.environ.get("OMP_NUM_THREADS") or str(os.cpu_count())
    print(
        "\n%-48s %10s %10s %9s %16s"
        % (
            "ms per call (%s, %s CPU threads)" % (DEV.name, threads),
            "CPU",
            "CUDA",
            "speedup",
            "tv batched_nms",
        )
    )
    for name, cpu_ms, cuda_ms, tv_ms in table:
        print(
            "%-48s %10.3f %10.3f %8.1fx %16s"
            % (name, cpu_ms, cuda_ms, cpu_ms / cuda_ms, "%.3f" % tv_ms if tv_ms else "-")
        )
