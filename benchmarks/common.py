"""What the benchmarks share: the machine line, alternating timing, endless batch streams,
CPU time of a process tree, a VOC-like dataset to pack, and the Markdown table.

The benchmarks live beside the package, not in it (like detectron2's tools/): they pull in
the peer (gluoncv) and psutil, which the library does not need. Run them as files
(``python benchmarks/bench.py ...``); their modules import each other by plain name.
"""

import os
import platform
import statistics
import time

import cv2
import numpy as np
import psutil

from ssd_gluon.data.classes import VOC_CLASSES
from ssd_gluon.data.synthetic import voc_year_dir, write_image_set, write_voc_item
from ssd_gluon.evaluation.speed import timed_call
from ssd_gluon.packing.voc import pack_voc


def machine():
    """One line naming the CPU, its cores and the threads the operators use."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return "%s, %d cores, OMP_NUM_THREADS=%s" % (
        cpu,
        os.cpu_count(),
        os.environ.get("OMP_NUM_THREADS", "unset"),
    )


def time_pair(ours, peer, repeats=20, warmup=3):
    """Median seconds of ``ours()`` and ``peer()`` (each returns NDArrays to wait on), timed
    alternately so that the noise of a shared machine hits both alike."""
    for _ in range(warmup):
        timed_call(ours), timed_call(peer)
    times = [(timed_call(ours), timed_call(peer)) for _ in range(repeats)]
    return statistics.median(t[0] for t in times), statistics.median(t[1] for t in times)


def endless(make_epoch):
    """Batches of ``make_epoch()`` (an iterable of one epoch), epoch after epoch."""
    while True:
        count = 0
        for batch in make_epoch():
            count += 1
            yield batch
        if not count:
            raise ValueError("the training iterator gave no batch")


def cpu_seconds():
    """CPU time of this process and its live children (the DataLoader's workers)."""
    me = psutil.Process()
    total = sum(me.cpu_times()[:2])
    for child in me.children(recursive=True):
        try:
            total += sum(child.cpu_times()[:2])
        except psutil.NoSuchProcess:
            pass
    return total


def throughput(batches, num_batches, batch_size):
    """(images/s, CPU seconds per image) over ``num_batches`` batches after one warm-up."""
    next(batches)
    t0, c0 = time.perf_counter(), cpu_seconds()
    for _ in range(num_batches):
        next(batches)
    wall, cpu = time.perf_counter() - t0, cpu_seconds() - c0
    n = num_batches * batch_size
    return n / wall, cpu / n


def _voc_like_image(rng, width=500, height=375):
    """Smooth random colours (JPEG-compressible like a photo) with a few rectangles."""
    small = rng.randint(0, 256, (height // 25 + 1, width // 25 + 1, 3)).astype(np.uint8)
    img = cv2.resize(small, (width, height), interpolation=cv2.INTER_CUBIC)
    noise = rng.randint(-12, 13, img.shape)
    return np.clip(img.astype(np.int32) + noise, 0, 255).astype(np.uint8)


def make_voc_like_tree(root, num, seed=0):
    """A VOC2007-style tree of ``num`` 500x375 JPEGs with 1-5 objects each (set 2007-trainval)."""
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


def make_records(work_dir, num_images, workers=2):
    """Pack a VOC-like tree of ``num_images`` JPEGs (500x375) into work_dir/train.rec;
    returns (the .rec path, packing images/s)."""
    tree = make_voc_like_tree(os.path.join(work_dir, "voc"), num_images)
    t0 = time.perf_counter()
    pack_voc(
        tree,
        ["2007-trainval"],
        os.path.join(work_dir, "train"),
        num_workers=workers,
        progress=False,
    )
    return os.path.join(work_dir, "train.rec"), num_images / (time.perf_counter() - t0)


def markdown_table(rows):
    """Rows (case, ours, peer, peer name, unit) as a Markdown table with ours / peer."""
    lines = [
        "| case | ours | peer | peer value | unit | ours / peer |",
        "|---|---:|---|---:|---|---:|",
    ]
    for name, ours, peer, peer_name, unit in rows:
        ratio = "%.3f" % (ours / peer) if peer else "-"
        lines.append(
            "| %s | %.2f | %s | %s | %s | %s |"
            % (name, ours, peer_name or "-", "%.2f" % peer if peer else "-", unit, ratio)
        )
    return "\n".join(lines)
