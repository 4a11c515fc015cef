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


def make_label(width, height, objects):
    """The float32 record label ``[4, 6, width, height, *objects.ravel()]``; ``objects``
    (K, 6) rows ``[cls, xmin, ymin, xmax, ymax, difficult]``, corners normalized."""
    head = np.array([HEADER_WIDTH, OBJECT_WIDTH, width, height], np.float32)
    return np.concatenate([head, np.asarray(objects, np.float32).reshape(-1)])


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
        raise UserError("%s: expected a .rec file packed by data/pack_voc.py" % rec_path)
    if not os.path.isfile(rec_path):
        raise MissingFileError(
            "%s: record file not found (pack it with data/pack_voc.py)" % rec_path
        )
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
    padding (class -1): training matches no anchor to them."""
    import mxnet as mx  # here only: the layout itself is read without MXNet

    cls = objects.slice_axis(axis=2, begin=0, end=1)
    rest = objects.slice_axis(axis=2, begin=1, end=None)
    crowd = rest.slice_axis(axis=2, begin=4, end=5) == FLAG_CROWD
    return mx.nd.concat(mx.nd.where(crowd, -mx.nd.ones_like(cls), cls), rest, dim=2)
