"""Side-by-side benchmarks: ours and the peer on the same inputs, in one process, timed
alternately so that the noise of a shared machine hits both alike."""
import os
import platform
import statistics
import time

import cv2
import mxnet as mx
import numpy as np
import psutil

from . import model_zoo, ops
from .speed import timed_call


def machine():
    """One line naming the CPU, its cores and the threads the operators use."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(l.split(":", 1)[1].strip() for l in f if l.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return "%s, %d cores, OMP_NUM_THREADS=%s" % (cpu, os.cpu_count(),
                                                os.environ.get("OMP_NUM_THREADS", "unset"))


def time_pair(ours, peer, repeats=20, warmup=3):
    """Median seconds of ``ours()`` and ``peer()`` (each returns NDArrays to wait on)."""
    for _ in range(warmup):
        timed_call(ours), timed_call(peer)
    times = [(timed_call(ours), timed_call(peer)) for _ in range(repeats)]
    return statistics.median(t[0] for t in times), statistics.median(t[1] for t in times)


def ssd300_anchors():
    """(1, 8732, 4) anchors of SSD300 from its own anchor generators."""
    net = model_zoo.get_model("ssd_300_vgg16_atrous_voc", ops="builtin")
    net.initialize()
    return net(mx.nd.zeros((1, 3, 300, 300)))[2]


def random_objects(rng, batch, max_objects):
    """(B, max_objects, 5) ground truths [class, box], 1..max_objects per image, -1 padded."""
    labels = -np.ones((batch, max_objects, 5), np.float32)
    for b in range(batch):
        k = rng.randint(1, max_objects + 1)
        xy = rng.uniform(0, 0.8, (k, 2))
        labels[b, :k, 0] = rng.randint(0, 20, k)
        labels[b, :k, 1:3] = xy
        labels[b, :k, 3:] = np.minimum(xy + rng.uniform(0.05, 0.6, (k, 2)), 1)
    return labels


def detector_like_scores(rng, anchors, labels, num_classes):
    """(B, C+1, N) class probabilities resembling a trained detector's: background about
    0.95 on average, a few percent of the foreground scores above 0.01, and anchors
    overlapping an object (IoU > 0.4) favouring its class."""
    a = anchors[0]
    batch = labels.shape[0]
    logits = rng.normal(scale=1.0, size=(batch, num_classes + 1, a.shape[0]))
    logits[:, 0] += 7.0
    for b in range(batch):
        for row in labels[b]:
            if row[0] < 0:
                continue
            iw = np.clip(np.minimum(a[:, 2], row[3]) - np.maximum(a[:, 0], row[1]), 0, None)
            ih = np.clip(np.minimum(a[:, 3], row[4]) - np.maximum(a[:, 1], row[2]), 0, None)
            inter = iw * ih
            union = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1]) + (row[3] - row[1]) * (row[4] - row[2]) - inter
            near = inter / union > 0.4
            logits[b, int(row[0]) + 1, near] += 12.0 * (inter / union)[near]
    e = np.exp(logits - logits.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


def bench_ops(repeats=20, log=print):
    """Rows (case, ours ms, peer ms, peer, 'ms') for prior, target and detection."""
    ops.load()
    rng = np.random.RandomState(0)
    rows = []

    def record(name, ours, peer, peer_name):
        t_ours, t_peer = time_pair(ours, peer, repeats)
        rows.append((name, t_ours * 1e3, t_peer * 1e3, peer_name, "ms"))
        log("%-52s ours %8.2f ms  %-34s %8.2f ms  ours/peer %.3f"
            % (name, t_ours * 1e3, peer_name, t_peer * 1e3, t_ours / t_peer))

    # Prior: SSD300's six feature maps and anchor settings, one call each.
    net = model_zoo.get_model("ssd_300_vgg16_atrous_voc", ops="builtin")
    maps = [(mx.nd.zeros((1, 1, s, s)), g._attrs) for s, g in
            zip((38, 19, 10, 5, 3, 1), net.anchor_generators)]
    record("prior: SSD300, 6 feature maps (8732 anchors)",
           lambda: [mx.nd.ssd_multibox_prior(x, **a) for x, a in maps],
           lambda: [mx.nd.contrib.MultiBoxPrior(x, **a) for x, a in maps], "contrib.MultiBoxPrior")

    anchors = ssd300_anchors()
    n = anchors.shape[1]
    labels = random_objects(rng, 32, 10)
    cls = mx.nd.array(rng.normal(size=(32, 21, n)))
    lab = mx.nd.array(labels)
    attrs = dict(overlap_threshold=0.5, negative_mining_ratio=3, negative_mining_thresh=0.5)
    record("target: B=32, N=%d, <=10 GT, mining 3:1" % n,
           lambda: mx.nd.ssd_multibox_target(anchors, lab, cls, **attrs),
           lambda: mx.nd.contrib.MultiBoxTarget(anchors, lab, cls, **attrs),
           "contrib.MultiBoxTarget")

    loc = mx.nd.array(rng.normal(scale=0.5, size=(8, n * 4)))
    inputs = {
        "detector-like scores": detector_like_scores(rng, anchors.asnumpy(), labels[:8], 20),
        "random scores (worst case)": _softmax(rng.normal(scale=3.0, size=(8, 21, n)), 1),
    }
    for what, prob in inputs.items():
        prob = mx.nd.array(prob)
        builtin = lambda: mx.nd.contrib.MultiBoxDetection(prob, loc, anchors, nms_topk=400,
                                                         nms_threshold=0.45)
        record("detection per-class, B=8, 21 cls, %s" % what,
               lambda: mx.nd.ssd_multibox_detection(prob, loc, anchors, per_class=True,
                                                    nms_topk=400, keep_topk=200,
                                                    nms_threshold=0.45),
               builtin, "contrib.MultiBoxDetection(topk 400)")
        record("detection best-class, B=8, 21 cls, %s" % what,
               lambda: mx.nd.ssd_multibox_detection(prob, loc, anchors, nms_topk=400,
                                                    nms_threshold=0.45),
               builtin, "contrib.MultiBoxDetection(topk 400)")
    return rows


def _softmax(x, axis):
    e = np.exp(x - x.max(axis, keepdims=True))
    return e / e.sum(axis, keepdims=True)


def markdown_table(rows):
    """Rows (case, ours, peer, peer name, unit) as a Markdown table with ours / peer."""
    lines = ["| case | ours | peer | peer value | unit | ours / peer |",
             "|---|---:|---|---:|---|---:|"]
    for name, ours, peer, peer_name, unit in rows:
        ratio = "%.3f" % (ours / peer) if peer else "-"
        lines.append("| %s | %.2f | %s | %s | %s | %s |" % (
            name, ours, peer_name or "-", "%.2f" % peer if peer else "-", unit, ratio))
    return "\n".join(lines)


# ---- data pipeline ------------------------------------------------------------------------

def _voc_like_image(rng, width=500, height=375):
    """Smooth random colours (JPEG-compressible like a photo) with a few rectangles."""
    small = rng.randint(0, 256, (height // 25 + 1, width // 25 + 1, 3)).astype(np.uint8)
    img = cv2.resize(small, (width, height), interpolation=cv2.INTER_CUBIC)
    noise = rng.randint(-12, 13, img.shape)
    return np.clip(img.astype(np.int32) + noise, 0, 255).astype(np.uint8)


def make_voc_like_tree(root, num, seed=0):
    """A VOC2007-style tree of ``num`` 500x375 JPEGs with 1-5 objects each (set 2007-trainval)."""
    from .sample import voc_year_dir, write_image_set, write_voc_item
    from .voc import VOC_CLASSES
    rng = np.random.RandomState(seed)
    base = voc_year_dir(root, "2007")
    names = ["%06d" % i for i in range(num)]
    for name in names:
        img = _voc_like_image(rng)
        objects = []
        for _ in range(rng.randint(1, 6)):
            x1, y1 = rng.randint(0, 400), rng.randint(0, 280)
            box = (x1, y1, x1 + rng.randint(20, 100), y1 + rng.randint(20, 95))
            objects.append((rng.randint(20), box, 0))
        write_voc_item(base, name, img, objects, VOC_CLASSES, quality=90)
    write_image_set(base, "trainval", names)
    return root


def _cpu_seconds():
    """CPU time of this process and its live children (the DataLoader's workers)."""
    me = psutil.Process()
    total = sum(me.cpu_times()[:2])
    for child in me.children(recursive=True):
        try:
            total += sum(child.cpu_times()[:2])
        except psutil.NoSuchProcess:
            pass
    return total


def _throughput(batches, num_batches, batch_size):
    """(images/s, CPU seconds per image) over ``num_batches`` batches after one warm-up."""
    next(batches)
    t0, c0 = time.perf_counter(), _cpu_seconds()
    for _ in range(num_batches):
        next(batches)
    wall, cpu = time.perf_counter() - t0, _cpu_seconds() - c0
    n = num_batches * batch_size
    return n / wall, cpu / n


def _forever(make_epoch):
    while True:
        yield from make_epoch()


def bench_data(repeats=20, log=print, workers=2, num_images=256, batch_size=32):
    """Training input pipelines at 300x300 on the same records: ours (ImageDetRecordIter,
    the paper's augmentation, ``workers`` C++ threads) against gluoncv's DataLoader +
    SSDDefaultTrainTransform with ``workers`` worker processes; plus packing speed."""
    import shutil
    import tempfile
    from gluoncv.data import RecordFileDetection
    from gluoncv.data.batchify import Pad, Stack, Tuple
    from gluoncv.data.transforms.presets.ssd import SSDDefaultTrainTransform
    from mxnet.gluon.data import DataLoader

    from . import data
    from .voc import pack_voc

    rows = []
    num_batches = max(4, repeats // 2)
    work = tempfile.mkdtemp(prefix="ssd_bench_data_")
    try:
        make_voc_like_tree(work, num_images)
        t0 = time.perf_counter()
        pack_voc(work, ["2007-trainval"], os.path.join(work, "train"), num_workers=workers,
                 progress=False)
        pack_rate = num_images / (time.perf_counter() - t0)
        log("packing: %d VOC-sized JPEGs with %d workers: %.0f images/s" % (num_images, workers, pack_rate))
        rows.append(("packing (data/pack_voc.py), %d workers" % workers, pack_rate, None, None,
                     "images/s"))
        rec = os.path.join(work, "train.rec")

        # The peer first: its worker processes fork, which must happen before our
        # iterator's C++ threads exist (forking then deadlocks the workers).
        dataset = RecordFileDetection(rec).transform(SSDDefaultTrainTransform(300, 300))
        loader = DataLoader(dataset, batch_size, shuffle=True, last_batch="rollover",
                            batchify_fn=Tuple(Stack(), Pad(pad_val=-1)), num_workers=workers)
        peer = _throughput(_forever(lambda: iter(loader)), num_batches, batch_size)
        del loader

        it = data.train_iter(rec, 300, batch_size, augment="paper", threads=workers)

        def ours_epoch():
            it.reset()
            for b in it:
                b.data[0].wait_to_read()
                yield b
        ours = _throughput(_forever(ours_epoch), num_batches, batch_size)
        name = "train input, paper augmentation, 300x300, %d threads/workers" % workers
        log("%s: ours %.0f img/s (%.1f CPU ms/img), gluoncv DataLoader+SSDDefaultTrainTransform "
            "%.0f img/s (%.1f CPU ms/img), ours/peer speed %.2fx"
            % (name, ours[0], ours[1] * 1e3, peer[0], peer[1] * 1e3, ours[0] / peer[0]))
        peer_name = "gluoncv DataLoader + SSDDefaultTrainTransform"
        rows.append((name, ours[0], peer[0], peer_name, "images/s"))
        rows.append(("CPU time per image (all threads and worker processes)", ours[1] * 1e3,
                     peer[1] * 1e3, peer_name, "ms"))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return rows
