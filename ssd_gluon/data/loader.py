"""Detection batches from RecordIO files (see ``records``), read by MXNet's C++
``ImageDetRecordIter`` (JPEG decode and augmentation in C++ threads), sharded by rank.

The iterators take a ``verify.Records`` (a file checked once by ``open_records``) or the path
of a ``.rec``, which is then checked here."""

import mxnet as mx
import numpy as np

from ..constants import MEAN_RGB, STD_RGB
from ..utils.errors import UserError
from .records import HEADER_WIDTH, OBJECT_WIDTH, split_label
from .transforms import augmentation, denormalize
from .verify import Records, open_records

# ImageDetRecordIter reshuffles, each epoch, the records of the chunk of the file it has read;
# with `shuffle_chunk_size` it also visits the shard's chunks in a new random order each
# epoch. Chunks of this many MB, plus a training file packed in random order
# (data/pack_voc.py --out-dir), make batches mix the whole set.
SHUFFLE_CHUNK_MB = 8


class ResetSafeIter:
    """Wraps ImageDetRecordIter, whose prefetcher starts filling at construction: a reset()
    before the first batch has been read drops records at random (MXNet 1.9.1), so such a
    reset is skipped. Iterates like the wrapped DataIter."""

    def __init__(self, it):
        self._it, self._started = it, False

    def reset(self):
        if self._started:
            self._it.reset()
            self._started = False

    def __iter__(self):
        return self

    def __next__(self):
        self._started = True
        return next(self._it)

    next = __next__

    def __getattr__(self, name):
        return getattr(self._it, name)


def _iter(
    records, data_shape, batch_size, part_index, num_parts, threads, normalize=True, **kwargs
):
    if not isinstance(records, Records):
        records = open_records(records)
    mean, std = (MEAN_RGB, STD_RGB) if normalize else ((0.0,) * 3, (1.0,) * 3)
    return ResetSafeIter(
        mx.io.ImageDetRecordIter(
            path_imgrec=records.path,
            data_shape=(3, data_shape, data_shape),
            batch_size=batch_size,
            label_pad_width=HEADER_WIDTH + OBJECT_WIDTH * records.max_objects,
            label_pad_value=-1,
            num_parts=num_parts,
            part_index=part_index,
            preprocess_threads=threads,
            mean_r=mean[0],
            mean_g=mean[1],
            mean_b=mean[2],
            std_r=std[0],
            std_g=std[1],
            std_b=std[2],
            resize_mode="force",
            ctx="cpu",
            verbose=False,
            # The last batch is padded (batch.pad), not filled from the next epoch, so that
            # every epoch starts at its own first record and covers the shard.
            round_batch=False,
            **kwargs,
        )
    )


def train_iter(
    records, data_shape, batch_size, part_index=0, num_parts=1, seed=0, augment="paper", threads=4
):
    """Shuffled, augmented batches of this rank's shard (``part_index`` of ``num_parts``).

    Each batch: ``data[0]`` (B, 3, S, S) normalized, ``label[0]`` (B, 8 + 6*M) labels;
    see ``records.split_label``.
    """
    return _iter(
        records,
        data_shape,
        batch_size,
        part_index,
        num_parts,
        threads,
        shuffle=True,
        seed=seed,
        shuffle_chunk_size=SHUFFLE_CHUNK_MB,
        shuffle_chunk_seed=seed,
        **augmentation(augment),
    )


def val_iter(records, data_shape, batch_size, part_index=0, num_parts=1, threads=4, normalize=True):
    """Resize-only batches in file order; the last batch is padded (see ``batch.pad``).
    ``data[0]`` is normalized as the network expects, or with ``normalize=False`` RGB
    pixels 0-255 (the input of a deployed detector, ``deploy.loading``)."""
    return _iter(
        records,
        data_shape,
        batch_size,
        part_index,
        num_parts,
        threads,
        normalize=normalize,
        shuffle=False,
    )


def augmented_samples(records, data_shape, num, augment="paper", seed=0, threads=2):
    """The first ``num`` samples of the training iterator, de-normalized: images (N, 3, S, S)
    RGB 0-255 and objects (N, M, 6) normalized (class -1 = padding)."""
    it = train_iter(records, data_shape, min(num, 32), augment=augment, seed=seed, threads=threads)
    images, objects = [], []
    while sum(len(i) for i in images) < num:
        try:
            batch = next(it)
        except StopIteration:
            if not images:
                raise UserError("%s: no samples" % getattr(records, "source", records)) from None
            break
        real = batch.data[0].shape[0] - batch.pad
        images.append(denormalize(batch.data[0].asnumpy()[:real]))
        objects.append(split_label(batch.label[0])[0].asnumpy()[:real])
    return np.concatenate(images)[:num], np.concatenate(objects)[:num]
