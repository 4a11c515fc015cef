"""Our training input pipeline against gluoncv's on the same records: MXNet's C++
ImageDetRecordIter with the paper's augmentation, against gluoncv's DataLoader +
SSDDefaultTrainTransform; plus the packer's speed."""

import shutil
import tempfile

from ssd_gluon.data.loader import train_iter

from common import endless, make_records, throughput


def bench_data(repeats=20, log=print, workers=2, num_images=256, batch_size=32):
    """Training input pipelines at 300x300 on the same records: ours (ImageDetRecordIter,
    the paper's augmentation, ``workers`` C++ threads) against gluoncv's DataLoader +
    SSDDefaultTrainTransform with ``workers`` worker processes; plus packing speed."""
    from gluoncv.data import RecordFileDetection
    from gluoncv.data.batchify import Pad, Stack, Tuple
    from gluoncv.data.transforms.presets.ssd import SSDDefaultTrainTransform
    from mxnet.gluon.data import DataLoader

    rows = []
    num_batches = max(4, repeats // 2)
    work = tempfile.mkdtemp(prefix="ssd_bench_data_")
    try:
        rec, pack_rate = make_records(work, num_images, workers)
        log(
            "packing: %d VOC-sized JPEGs with %d workers: %.0f images/s"
            % (num_images, workers, pack_rate)
        )
        rows.append(
            ("packing (data/pack_voc.py), %d workers" % workers, pack_rate, None, None, "images/s")
        )

        # The peer first: its worker processes fork, which must happen before our
        # iterator's C++ threads exist (forking then deadlocks the workers).
        dataset = RecordFileDetection(rec).transform(SSDDefaultTrainTransform(300, 300))
        loader = DataLoader(
            dataset,
            batch_size,
            shuffle=True,
            last_batch="rollover",
            batchify_fn=Tuple(Stack(), Pad(pad_val=-1)),
            num_workers=workers,
        )
        peer = throughput(endless(loader.__iter__), num_batches, batch_size)
        del loader

        it = train_iter(rec, 300, batch_size, augment="paper", threads=workers)

        def ours_epoch():
            it.reset()
            for b in it:
                b.data[0].wait_to_read()
                yield b

        ours = throughput(endless(ours_epoch), num_batches, batch_size)
        name = "train input, paper augmentation, 300x300, %d threads/workers" % workers
        log(
            "%s: ours %.0f img/s (%.1f CPU ms/img), gluoncv DataLoader+SSDDefaultTrainTransform "
            "%.0f img/s (%.1f CPU ms/img), ours/peer speed %.2fx"
            % (name, ours[0], ours[1] * 1e3, peer[0], peer[1] * 1e3, ours[0] / peer[0])
        )
        peer_name = "gluoncv DataLoader + SSDDefaultTrainTransform"
        rows.append((name, ours[0], peer[0], peer_name, "images/s"))
        rows.append(
            (
                "CPU time per image (all threads and worker processes)",
                ours[1] * 1e3,
                peer[1] * 1e3,
                peer_name,
                "ms",
            )
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return rows
