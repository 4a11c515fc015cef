"""A plain folder of images with VOC XML annotations (LabelImg's output: one ``NAME.xml`` per
image, beside it or in a folder of its own; no ``ImageSets``) -> train / validation records.

Images are any format OpenCV reads (``packing.read_image``: JPEG, PNG, TIFF, BMP, WebP;
16-bit or with alpha converted), re-encoded as JPEG. The annotations are parsed as in
``pack_voc`` (same checks, same box convention). The split is a seeded random fraction or
given by list files; classes are a list, or discovered from the annotations.
"""

import os
import sys
import xml.etree.ElementTree as ET

import numpy as np

from ..data.classes import check_class_names
from ..utils.errors import MissingFileError, UserError
from .common import check_other_classes, pack_items
from .voc import VocItemLoader

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")


def folder_items(folder, annotations=None):
    """``[(image rel, xml rel)]`` for every image in ``folder`` (not recursive), sorted by
    name, paths relative to ``folder``; each XML is ``NAME.xml`` in ``annotations`` (a path
    relative to ``folder`` or absolute; default: beside the image). An image without its
    XML stays listed (the packer reports it); an XML without an image gets one line on
    stderr. One-line error if the folder holds no images."""
    if not os.path.isdir(folder):
        raise MissingFileError(f"{folder}: image folder not found")
    ann_dir = os.path.join(folder, annotations) if annotations else folder
    if not os.path.isdir(ann_dir):
        raise MissingFileError(f"{ann_dir}: annotation folder not found")
    names = sorted(os.listdir(folder))
    images = [n for n in names if os.path.splitext(n)[1].lower() in IMAGE_EXTENSIONS]
    if not images:
        raise UserError(f"{folder}: no images ({', '.join(IMAGE_EXTENSIONS)}) in this folder")
    stems = {os.path.splitext(n)[0] for n in images}
    rel = os.path.relpath(ann_dir, folder)
    for name in sorted(os.listdir(ann_dir)):
        stem, ext = os.path.splitext(name)
        if ext.lower() == ".xml" and stem not in stems:
            print(
                f"{os.path.join(ann_dir, name)}: no image of that name; left out", file=sys.stderr
            )
    return [
        (n, os.path.normpath(os.path.join(rel, os.path.splitext(n)[0] + ".xml"))) for n in images
    ]


def discover_classes(folder, items):
    """The sorted class names found in the annotations of ``items`` (unreadable files are
    left to the packer to report)."""
    names = set()
    for _, xml_rel in items:
        try:
            root = ET.parse(os.path.join(folder, xml_rel)).getroot()
        except (ET.ParseError, OSError):
            continue
        for obj in root.findall("object"):
            text = obj.findtext("name")
            if text and text.strip():
                names.add(text.strip())
    if not names:
        raise UserError(f"{folder}: no object names in any annotation (nothing to learn)")
    return sorted(names)


def split_items(items, val_fraction, seed=0):
    """``(train, val)``: a seeded random ``val_fraction`` of ``items`` for validation (at
    least one item when the fraction is above 0), both in their original order."""
    if not 0 <= val_fraction < 1:
        raise UserError(f"--val-fraction {val_fraction}: expected a fraction in [0, 1)")
    count = int(round(len(items) * val_fraction))
    if val_fraction > 0:
        count = min(max(count, 1), len(items) - 1)
    chosen = set(np.random.RandomState(seed).permutation(len(items))[:count].tolist())
    return (
        [it for i, it in enumerate(items) if i not in chosen],
        [it for i, it in enumerate(items) if i in chosen],
    )


def items_in_list(items, list_path):
    """The ``items`` named in ``list_path`` (one image name or name without extension per
    line), in the list's order; one-line error for a name that is not in the folder."""
    if not os.path.isfile(list_path):
        raise MissingFileError(f"{list_path}: list file not found")
    by_name = {}
    for item in items:
        by_name[item[0]] = by_name[os.path.splitext(item[0])[0]] = item
    chosen = []
    with open(list_path) as f:
        for number, line in enumerate(f, 1):
            name = line.strip()
            if not name:
                continue
            if name not in by_name:
                raise UserError(f"{list_path}:{number}: {name!r} is not an image of the folder")
            chosen.append(by_name[name])
    return chosen


def pack_folder(
    folder,
    items,
    out_prefix,
    class_names,
    strict=False,
    num_workers=None,
    progress=True,
    shuffle_seed=None,
    other_classes=None,
    keep_empty=False,
):
    """Pack ``items`` (``folder_items``) into ``out_prefix.{rec,idx,lst,classes.txt}``;
    returns a ``packing.PackSummary``. Arguments as ``pack_voc``'s; ``keep_empty`` packs
    images whose annotation has no usable object (evaluation sets)."""
    class_names = check_class_names(class_names)
    loader = VocItemLoader(
        folder, class_names, check_other_classes(other_classes, strict), keep_empty
    )
    return pack_items(items, loader, out_prefix, strict, num_workers, progress, shuffle_seed)
