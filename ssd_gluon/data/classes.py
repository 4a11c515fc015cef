"""Class lists: the presets' defaults and the checks every list goes through."""

import os
from collections import Counter

from ..utils.errors import UserError

# PASCAL VOC's 20 classes, in the devkit's order (class index k = k-th name).
VOC_CLASSES = (
    "aeroplane",
    "bicycle",
    "bird",
    "boat",
    "bottle",
    "bus",
    "car",
    "cat",
    "chair",
    "cow",
    "diningtable",
    "dog",
    "horse",
    "motorbike",
    "person",
    "pottedplant",
    "sheep",
    "sofa",
    "train",
    "tvmonitor",
)

# COCO's 80 detection categories, in the order of their category ids (1..90 with gaps):
# class index k = k-th name, the contiguous order gluoncv's COCO models predict in.
COCO_CLASSES = (
    "person",
    "bicycle",
    "car",
    "motorcycle",
    "airplane",
    "bus",
    "train",
    "truck",
    "boat",
    "traffic light",
    "fire hydrant",
    "stop sign",
    "parking meter",
    "bench",
    "bird",
    "cat",
    "dog",
    "horse",
    "sheep",
    "cow",
    "elephant",
    "bear",
    "zebra",
    "giraffe",
    "backpack",
    "umbrella",
    "handbag",
    "tie",
    "suitcase",
    "frisbee",
    "skis",
    "snowboard",
    "sports ball",
    "kite",
    "baseball bat",
    "baseball glove",
    "skateboard",
    "surfboard",
    "tennis racket",
    "bottle",
    "wine glass",
    "cup",
    "fork",
    "knife",
    "spoon",
    "bowl",
    "banana",
    "apple",
    "sandwich",
    "orange",
    "broccoli",
    "carrot",
    "hot dog",
    "pizza",
    "donut",
    "cake",
    "chair",
    "couch",
    "potted plant",
    "bed",
    "dining table",
    "toilet",
    "tv",
    "laptop",
    "mouse",
    "remote",
    "keyboard",
    "cell phone",
    "microwave",
    "oven",
    "toaster",
    "sink",
    "refrigerator",
    "book",
    "clock",
    "vase",
    "scissors",
    "teddy bear",
    "hair drier",
    "toothbrush",
)

# The embedded synthetic sample's four shapes (data/synthetic.py draws them in this order).
SAMPLE_CLASSES = ("circle", "rectangle", "triangle", "cross")


def check_class_names(class_names):
    """Return ``class_names`` as a tuple; UserError if empty, duplicated or not one-line."""
    names = tuple(class_names)
    if not names:
        raise UserError("class list is empty")
    for name in names:
        if not name or name != name.strip() or "\n" in name or "\t" in name:
            raise UserError("bad class name %r" % (name,))
    dup = [n for n, c in Counter(names).items() if c > 1]
    if dup:
        raise UserError("duplicate class names: %s" % ", ".join(dup))
    return names


def parse_class_list(spec, default=VOC_CLASSES, source="--classes"):
    """Class names from ``spec``: a file with one name per line, or ``"a,b,c"``; ``default``
    when ``spec`` is None. Errors name the file, or ``source`` for an inline list."""
    if spec is None:
        return tuple(default)
    if os.path.isfile(spec):
        source = spec
        with open(spec) as f:
            names = [line.strip() for line in f if line.strip()]
    else:
        names = [name.strip() for name in spec.split(",") if name.strip()]
    try:
        return check_class_names(names)
    except UserError as err:
        raise UserError("%s: %s" % (source, err)) from None
