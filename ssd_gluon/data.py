"""Detection batches from RecordIO files packed by ``ssd_gluon.voc``, read by MXNet's C++
``ImageDetRecordIter`` (JPEG decode and augmentation in C++ threads), sharded by rank."""
import os

import mxnet as mx
import numpy as np

from .voc import HEADER_WIDTH, OBJECT_WIDTH

# ImageNet statistics on the 0-255 scale; the network expects (pixel - mean) / std.
MEAN_RGB = (123.675, 116.28, 103.53)
STD_RGB = (58.395, 57.12, 57.375)

# The paper's augmentation (section 3.6 and the "zoom out" of SSD300*), in MXNet's order:
# photometric distortion, mirror, expansion onto a mean-filled canvas up to 4x (p 0.5), one
# of five min-IoU crop samplers (IoU >= 0.1 ... 0.9 with some object, scale [0.3, 1], aspect
# [0.5, 2], 50 trials; an object is kept when its center stays inside), resize.
PAPER_PHOTOMETRIC = dict(
    max_random_hue=18, random_hue_prob=0.5,
    max_random_saturation=32, random_saturation_prob=0.5,
    max_random_illumination=32, random_illumination_prob=0.5,
    max_random_contrast=0.5, random_contrast_prob=0.5)
PAPER_GEOMETRY = dict(
    rand_crop_prob=5.0 / 6, num_crop_sampler=5,
    min_crop_overlaps=(0.1, 0.3, 0.5, 0.7, 0.9), max_crop_overlaps=(1.0,) * 5,
    min_crop_scales=(0.3,) * 5, max_crop_scales=(1.0,) * 5,
    min_crop_aspect_ratios=(0.5,) * 5, max_crop_aspect_ratios=(2.0,) * 5,
    max_crop_trials=(50,) * 5, crop_emit_mode="center",
    rand_pad_prob=0.5, max_pad_scale=4.0, fill_value=124,
    rand_mirror_prob=0.5)
PAPER_AUG = dict(PAPER_PHOTOMETRIC, **PAPER_GEOMETRY)
# Milder setting for the compact demo model (short schedule, small objects hurt it).
LIGHT_AUG = dict(PAPER_AUG, rand_crop_prob=0.5, max_pad_scale=1.5, rand_pad_prob=0.3)
AUGMENTATIONS = {"paper": PAPER_AUG, "light": LIGHT_AUG, "none": {}}


def check_rec(rec_path):
    """Absolute path of an existing ``.rec``; a one-line error otherwise."""
    if not rec_path.endswith(".rec"):
        raise ValueError("%s: expected a .rec file packed by data/pack_voc.py" % rec_path)
    if not os.path.isfile(rec_path):
        raise FileNotFoundError("%s: record file not found (pack it with data/pack_voc.py)"
                                % rec_path)
    return os.path.abspath(rec_path)


def read_lst(rec_path):
    """Rows of the ``.lst`` written beside the ``.rec``: lists of floats (the labels)."""
    lst = rec_path[:-4] + ".lst"
    if not os.path.isfile(lst):
        raise FileNotFoundError("%s: list file not found next to the .rec" % lst)
    with open(lst) as f:
        return [[float(v) for v in line.split("\t")[1:-1]] for line in f if line.strip()]


def read_classes(rec_path):
    """Class names written by the packer as ``PREFIX.classes.txt``, or None."""
    path = rec_path[:-4] + ".classes.txt"
    if not os.path.isfile(path):
        return None
    with open(path) as f:
        return [line.strip() for line in f if line.strip()]


def dataset_stats(rec_path):
    """(number of images, largest number of objects in one image) from the ``.lst``."""
    rows = read_lst(check_rec(rec_path))
    return len(rows), max((len(r) - HEADER_WIDTH) // OBJECT_WIDTH for r in rows)


def shard_sizes(rec_path, num_parts):
    """Images in each of the ``num_parts`` shards that ImageDetRecordIter reads.

    The reader splits the ``.rec`` by bytes (part k starts at the first record at or after
    byte k*size/num_parts), so shards differ in size; ranks must agree on a common number of
    batches or Horovod's allreduce deadlocks. Offsets come from the ``.idx``.
    """
    rec_path = check_rec(rec_path)
    idx = rec_path[:-4] + ".idx"
    if not os.path.isfile(idx):
        raise FileNotFoundError("%s: index file not found next to the .rec" % idx)
    with open(idx) as f:
        offsets = sorted(int(line.split("\t")[1]) for line in f if line.strip())
    total = os.path.getsize(rec_path)
    bounds = [total * k // num_parts for k in range(num_parts + 1)]
    return [sum(1 for o in offsets if bounds[k] <= o < bounds[k + 1]) for k in range(num_parts)]


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


def _iter(rec_path, data_shape, batch_size, part_index, num_parts, threads, **kwargs):
    rec_path = check_rec(rec_path)
    _, max_obj = dataset_stats(rec_path)
    return ResetSafeIter(mx.io.ImageDetRecordIter(
        path_imgrec=rec_path, data_shape=(3, data_shape, data_shape), batch_size=batch_size,
        label_pad_width=HEADER_WIDTH + OBJECT_WIDTH * max_obj, label_pad_value=-1,
        num_parts=num_parts, part_index=part_index, preprocess_threads=threads,
        mean_r=MEAN_RGB[0], mean_g=MEAN_RGB[1], mean_b=MEAN_RGB[2],
        std_r=STD_RGB[0], std_g=STD_RGB[1], std_b=STD_RGB[2],
        resize_mode="force", ctx="cpu", verbose=False,
        # The last batch is padded (batch.pad), not filled from the next epoch, so that
        # every epoch starts at its own first record and covers the shard.
        round_batch=False, **kwargs))


# ImageDetRecordIter reshuffles, each epoch, the records of the chunk of the file it has read;
# with `shuffle_chunk_size` it also visits the shard's chunks in a new random order each
# epoch. Chunks of this many MB, plus a training file packed in random order
# (data/pack_voc.py --out-dir), make batches mix the whole set.
SHUFFLE_CHUNK_MB = 8


def train_iter(rec_path, data_shape, batch_size, part_index=0, num_parts=1, seed=0,
               augment="paper", threads=4):
    """Shuffled, augmented batches of this rank's shard (``part_index`` of ``num_parts``).

    Each batch: ``data[0]`` (B, 3, S, S) normalized, ``label[0]`` (B, 8 + 6*M) labels;
    see ``split_label``.
    """
    if isinstance(augment, dict):
        params = augment
    elif augment in AUGMENTATIONS:
        params = AUGMENTATIONS[augment]
    else:
        raise ValueError("augment must be one of %s (or a dict of ImageDetRecordIter "
                         "augmentation parameters)" % ", ".join(AUGMENTATIONS))
    return _iter(rec_path, data_shape, batch_size, part_index, num_parts, threads,
                 shuffle=True, seed=seed, shuffle_chunk_size=SHUFFLE_CHUNK_MB,
                 shuffle_chunk_seed=seed, **params)


def val_iter(rec_path, data_shape, batch_size, part_index=0, num_parts=1, threads=4):
    """Resize-only batches in file order; the last batch is padded (see ``batch.pad``)."""
    return _iter(rec_path, data_shape, batch_size, part_index, num_parts, threads,
                 shuffle=False)


# ImageDetRecordIter prepends [channels, height, width, raw label length] to each label.
ITER_PREFIX = 4


def split_label(label):
    """Iterator label (B, 4 + 4 + 6*M) -> objects (B, M, 6) ``[cls, xmin, ymin, xmax, ymax, difficult]``
    normalized (class -1 = padding) and original image sizes (B, 2) ``[width, height]``."""
    start = ITER_PREFIX + HEADER_WIDTH
    objects = label.slice_axis(axis=1, begin=start, end=None).reshape((0, -1, OBJECT_WIDTH))
    sizes = label.slice_axis(axis=1, begin=ITER_PREFIX + 2, end=ITER_PREFIX + 4)
    return objects, sizes


def denormalize(images):
    """Iterator images (B, 3, H, W) NumPy, (pixel - mean) / std -> RGB pixels 0-255."""
    std = np.array(STD_RGB, np.float32).reshape(1, 3, 1, 1)
    return images * std + np.array(MEAN_RGB, np.float32).reshape(1, 3, 1, 1)


def augmented_samples(rec_path, data_shape, num, augment="paper", seed=0, threads=2):
    """The first ``num`` samples of the training iterator, de-normalized: images (N, 3, S, S)
    RGB 0-255 and objects (N, M, 6) normalized (class -1 = padding)."""
    it = train_iter(rec_path, data_shape, min(num, 32), augment=augment, seed=seed, threads=threads)
    images, objects = [], []
    while sum(len(i) for i in images) < num:
        try:
            batch = next(it)
        except StopIteration:
            if not images:
                raise ValueError("%s: no samples" % rec_path) from None
            break
        real = batch.data[0].shape[0] - batch.pad
        images.append(denormalize(batch.data[0].asnumpy()[:real]))
        objects.append(split_label(batch.label[0])[0].asnumpy()[:real])
    return np.concatenate(images)[:num], np.concatenate(objects)[:num]
