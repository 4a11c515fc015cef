"""The record layout shared by the packers and the readers.

Each record of a ``.rec`` holds a JPEG and a float32 label::

    [HEADER_WIDTH=4, OBJECT_WIDTH=6, width, height,  cls, xmin, ymin, xmax, ymax, flag, ...]

a 4-value header (header width, object width, original image width and height in pixels)
followed by 6 values per object: 0-based class index in the class list, box corners
normalized to [0, 1], and a flag (0, ``FLAG_DIFFICULT`` or ``FLAG_CROWD``). The record
header's ``id2`` holds the dataset's own image id (COCO's; 0 for VOC). Beside ``PREFIX.rec`` lie
``PREFIX.idx`` (byte offsets), ``PREFIX.lst`` (im2rec style: ``index<TAB>label...<TAB>path``)
and ``PREFIX.classes.txt`` (class names, one per line, in index order).

MXNet's ``ImageDetRecordIter`` prepends ``ITER_PREFIX`` values ``[channels, height, width,
raw label length]`` to each label it returns; ``split_label`` undoes that.
"""

import os

import numpy as np

from ..utils.errors import MissingFileError, UserError

HEADER_WIDTH = 4
OBJECT_WIDTH = 6
# The object flag (last value): 0 a plain object; FLAG_DIFFICULT a VOC "difficult" one (trained
# on, ignored by the VOC metric); FLAG_CROWD a COCO "iscrowd" region (not trained on, a crowd
# region for the COCO metric).
FLAG_DIFFICULT = 1
FLAG_CROWD = 2
# An image without objects holds this one object: ImageDetRecordIter rejects a label without
# any, and drops objects of class -1 as it reads them (they look like padding).
EMPTY_OBJECT = (-1, 0, 0, 0, 0, 0)
ITER_PREFIX = 4
OUTPUT_SUFFIXES = (".rec", ".idx", ".lst", ".classes.txt")
# Where record files come from, for the messages about a missing or unusable one.
PACKERS = "data/pack_voc.py, data/pack_coco.py or data/pack_folder.py"
# Written beside them by the COCO packer: the dataset's category id of each class.
CATEGORIES_SUFFIX = ".categories.txt"


def make_label(width, height, objects):
    """The float32 record label ``[4, 6, width, height, *objects.ravel()]``; ``objects``
    (K, 6) rows ``[cls, xmin, ymin, xmax, ymax, difficult]``, corners normalized."""
    head = np.array([HEADER_WIDTH, OBJECT_WIDTH, width, height], np.float32)
    return np.concatenate([head, np.asarray(objects, np.float32).reshape(-1)])


def read_category_ids(rec_path):
    """The dataset's category id of each class (``PREFIX.categories.txt``, COCO packs), or
    None."""
    path = rec_path[:-4] + CATEGORIES_SUFFIX
    if not os.path.isfile(path):
        return None
    with open(path) as f:
        try:
            return [int(line.split("\t")[0]) for line in f if line.strip()]
        except ValueError:
            raise UserError("%s: expected lines 'category id<TAB>name'" % path) from None


def split_label(label):
    """Iterator label (B, 4 + 4 + 6*M) NDArray -> objects (B, M, 6) ``[cls, xmin, ymin, xmax,
    ymax, difficult]`` normalized (class -1 = padding) and original image sizes (B, 2)
    ``[width, height]``."""
    start = ITER_PREFIX + HEADER_WIDTH
    objects = label.slice_axis(axis=1, begin=start, end=None).reshape((0, -1, OBJECT_WIDTH))
    sizes = label.slice_axis(axis=1, begin=ITER_PREFIX + 2, end=ITER_PREFIX + 4)
    return objects, sizes


def check_rec(rec_path):
    """Absolute path of an existing ``.rec``; a one-line error otherwise."""
    if not rec_path.endswith(".rec"):
        raise UserError("%s: expected a .rec file packed by %s" % (rec_path, PACKERS))
    if not os.path.isfile(rec_path):
        raise MissingFileError("%s: record file not found (pack it with %s)" % (rec_path, PACKERS))
    return os.path.abspath(rec_path)


def read_lst(rec_path):
    """Rows of the ``.lst`` beside the ``.rec`` as (float32 label, image path), in file
    order; None when there is no ``.lst``."""
    lst = rec_path[:-4] + ".lst"
    if not os.path.isfile(lst):
        return None
    rows = []
    with open(lst) as f:
        for number, line in enumerate(f, 1):
            fields = line.rstrip("\n").split("\t")
            if not line.strip():
                continue
            try:
                rows.append((np.array(fields[1:-1], np.float32), fields[-1]))
            except ValueError:
                raise UserError(
                    "%s:%d: not an im2rec list line (index<TAB>labels<TAB>path)" % (lst, number)
                ) from None
    return rows


def read_classes(rec_path):
    """Class names written by the packer as ``PREFIX.classes.txt``, or None."""
    path = rec_path[:-4] + ".classes.txt"
    if not os.path.isfile(path):
        return None
    with open(path) as f:
        return [line.strip() for line in f if line.strip()]


def trainable(objects):
    """Iterator objects (B, M, 6) NDArray with crowd regions (``FLAG_CROWD``) turned into
    padding rows (all -1) and moved after the real objects (MXNet's MultiBoxTarget requires
    padding last), the others keeping their order: training matches no anchor to crowds."""
    import mxnet as mx  # here only: the layout itself is read without MXNet

    batch, rows = objects.shape[0], objects.shape[1]
    crowd = objects.slice_axis(axis=2, begin=5, end=6) == FLAG_CROWD  # (B, M, 1)
    cleared = mx.nd.where(crowd.broadcast_like(objects), -mx.nd.ones_like(objects), objects)
    padding = cleared.slice_axis(axis=2, begin=0, end=1).reshape((batch, rows)) < 0
    index = mx.nd.arange(rows, ctx=objects.context).reshape((1, rows))
    order = mx.nd.argsort(mx.nd.broadcast_add(padding * rows, index), axis=1)  # stable
    base = (mx.nd.arange(batch, ctx=objects.context) * rows).reshape((batch, 1))
    flat = mx.nd.broadcast_add(order, base).reshape((-1,))
    return cleared.reshape((-1, OBJECT_WIDTH)).take(flat).reshape((batch, rows, OBJECT_WIDTH))
