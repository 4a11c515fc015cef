"""PASCAL VOC -> MXNet RecordIO packer (the format ``mx.io.ImageDetRecordIter`` reads).

Each record is ``mx.recordio.pack_img(IRHeader(0, label, index, 0), img_bgr, quality=95,
img_fmt='.jpg')``: the decoded image re-encoded as JPEG, ``index`` running 0..N-1 in output
order, and ``label`` the float32 layout of ``records`` (header, then per object class, box,
difficult). Box corners are normalized as ``(x - 1) / width`` and ``(y - 1) / height`` (VOC
pixel coordinates are 1-based; the same shift is applied to min and max corners, as gluoncv
does) and clipped to [0, 1].

Files written for ``out_prefix``: ``.rec`` + ``.idx`` (``MXIndexedRecordIO``), ``.lst``
(im2rec style, ``index<TAB>label values...<TAB>image path relative to voc_root``) and
``.classes.txt`` (class names, one per line, in index order). All four are written under
``<name>.tmp-<pid>`` and renamed into place only when everything succeeded.
"""

import os
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np

from ..data.classes import VOC_CLASSES, check_class_names
from ..data.records import OBJECT_WIDTH
from .common import (
    NO_OBJECTS,
    OTHER_CLASSES_MODES,
    UNKNOWN_CLASS,
    Annotation,
    PackError,
    PackSummary,
    Skipped,
    check_other_classes,
    format_counts,
    load_jpeg,
    pack_items,
)

__all__ = [
    "NO_OBJECTS",
    "OTHER_CLASSES_MODES",
    "UNKNOWN_CLASS",
    "Annotation",
    "PackError",
    "PackSummary",
    "Skipped",
    "VocItemLoader",
    "pack_voc",
    "parse_annotation",
    "read_image_set",
]


def _text(elem, tag, xml_path, what):
    """Return the stripped text of ``elem/tag``; PackError if absent or empty."""
    node = elem.find(tag)
    if node is None or node.text is None or not node.text.strip():
        raise PackError(xml_path, f"{what} has no <{tag}>", "broken annotation")
    return node.text.strip()


def _number(elem, tag, xml_path, what):
    """Return ``elem/tag`` as a float; PackError if absent or not a number."""
    text = _text(elem, tag, xml_path, what)
    try:
        return float(text)
    except ValueError:
        raise PackError(
            xml_path, f"{what} <{tag}> is not a number: {text!r}", "broken annotation"
        ) from None


def _read_size(root, xml_path):
    """Return (width, height) from ``<size>``; PackError if missing or not positive."""
    size = root.find("size")
    if size is None:
        raise PackError(xml_path, "missing <size>", "broken annotation")
    width, height = (_number(size, t, xml_path, "<size>") for t in ("width", "height"))
    if width <= 0 or height <= 0 or width != int(width) or height != int(height):
        raise PackError(xml_path, f"bad <size> {width}x{height}", "broken annotation")
    return int(width), int(height)


def _read_object(obj, num, cls, width, height, xml_path):
    """Return (row, clipped) for ``<object>`` number ``num`` of class index ``cls``; row is a
    float32 (6,) or None if dropped."""
    what = f"object {num}"
    box = obj.find("bndbox")
    if box is None:
        raise PackError(xml_path, f"{what} has no <bndbox>", "broken annotation")
    x1, y1, x2, y2 = (_number(box, t, xml_path, what) for t in ("xmin", "ymin", "xmax", "ymax"))
    raw = np.array([(x1 - 1) / width, (y1 - 1) / height, (x2 - 1) / width, (y2 - 1) / height])
    corners = np.clip(raw, 0.0, 1.0).astype(np.float32)
    if corners[2] <= corners[0] or corners[3] <= corners[1]:
        return None, False
    difficult = obj.find("difficult")
    flag = 0.0
    if difficult is not None and difficult.text and difficult.text.strip():
        flag = float(_number(obj, "difficult", xml_path, what) != 0)
    row = np.array([cls, *corners, flag], dtype=np.float32)
    return row, bool(np.any(raw != np.clip(raw, 0.0, 1.0)))


def parse_annotation(xml_path, class_names, other_classes="error"):
    """Parse a VOC XML file into an ``Annotation`` (objects float32 (K, 6), see module doc).

    Raises PackError (naming ``xml_path``) if the file is missing, malformed or truncated,
    has no valid ``<size>`` or a malformed ``<object>``. An object whose class is not in
    ``class_names`` raises PackError (kind ``'unknown class'``) unless ``other_classes`` is
    ``'drop'``: then it is left out, unchecked beyond its name, and counted in ``ignored``.
    Boxes partly outside the image are clipped; zero-area boxes are dropped (and counted).
    """
    if not os.path.isfile(xml_path):
        raise PackError(xml_path, "annotation file not found", "missing annotation")
    try:
        root = ET.parse(xml_path).getroot()
    except ET.ParseError as err:
        raise PackError(xml_path, f"malformed XML ({err})", "broken annotation") from None
    except OSError as err:
        raise PackError(xml_path, f"cannot read ({err.strerror})", "broken annotation") from None
    width, height = _read_size(root, xml_path)
    class_index = {name: i for i, name in enumerate(class_names)}
    rows, clipped, dropped, ignored = [], 0, 0, {}
    for num, obj in enumerate(root.findall("object")):
        name = _text(obj, "name", xml_path, f"object {num}")
        if name not in class_index:
            if other_classes != "drop":
                raise PackError(xml_path, f"unknown class {name!r} (object {num})", UNKNOWN_CLASS)
            ignored[name] = ignored.get(name, 0) + 1
            continue
        row, was_clipped = _read_object(obj, num, class_index[name], width, height, xml_path)
        if row is None:
            dropped += 1
        else:
            rows.append(row)
            clipped += was_clipped
    objects = np.stack(rows) if rows else np.zeros((0, OBJECT_WIDTH), np.float32)
    return Annotation(width, height, objects, clipped, dropped, ignored, path=str(xml_path))


def read_image_set(voc_root, spec):
    """Return the ``(image path, xml path)`` pairs of image set ``spec`` = ``"YEAR-SPLIT"``.

    Reads ``voc_root/VOC<YEAR>/ImageSets/Main/<SPLIT>.txt`` (one image id per line, first
    token) and returns paths relative to ``voc_root``, in file order:
    ``("VOC<YEAR>/JPEGImages/<id>.jpg", "VOC<YEAR>/Annotations/<id>.xml")``.
    The spec is split on its last ``-``. PackError if the spec or set file is bad.
    """
    year, sep, split = str(spec).rpartition("-")
    if not sep or not year or not split:
        raise PackError(
            spec, "bad image set name, expected YEAR-SPLIT (e.g. 2007-trainval)", "bad set"
        )
    base = f"VOC{year}"
    set_file = Path(voc_root, base, "ImageSets", "Main", f"{split}.txt")
    try:
        text = set_file.read_text()
    except OSError as err:
        problem = "image set file not found" if not set_file.exists() else err.strerror
        raise PackError(set_file, problem, "bad set") from None
    ids = [line.split()[0] for line in text.splitlines() if line.strip()]
    return [(f"{base}/JPEGImages/{i}.jpg", f"{base}/Annotations/{i}.xml") for i in ids]


class VocItemLoader:
    """Picklable worker: ``(image rel, xml rel)`` -> ``(error, annotation, jpeg bytes)``, paths
    relative to ``root`` (``packing``'s loader contract).

    ``error`` is a PackError (or None) saying why the image is left out; ``annotation`` is
    None if it could not be read; ``jpeg`` is None whenever ``error`` is set. An image
    without any usable object gets a PackError of kind ``NO_OBJECTS`` with its annotation,
    unless ``keep_empty`` (evaluation sets): then it is packed without objects.
    """

    def __init__(self, root, class_names, other_classes="drop", keep_empty=False):
        self.root = str(root)
        self.class_names = tuple(class_names)
        self.other_classes = other_classes
        self.keep_empty = keep_empty

    def __call__(self, pair):
        try:
            return self._load(*pair)
        except PackError as err:
            return err, None, None

    def _load(self, img_rel, xml_rel):
        xml_path = os.path.join(self.root, xml_rel)
        ann = parse_annotation(xml_path, self.class_names, self.other_classes)
        if len(ann.objects) == 0 and not self.keep_empty:
            problem = NO_OBJECTS
            if ann.ignored:
                problem += f" (only classes not in the list: {format_counts(ann.ignored)})"
            return PackError(xml_path, problem, NO_OBJECTS), ann, None
        return None, ann, load_jpeg(os.path.join(self.root, img_rel), ann)


def _collect_pairs(voc_root, sets):
    """Return all ``(image rel, xml rel)`` pairs of ``sets`` in order (PackError if bad)."""
    if not os.path.isdir(voc_root):
        raise PackError(voc_root, "VOC root directory not found", "bad root")
    if isinstance(sets, str):
        sets = [s for s in sets.split(",") if s.strip()]
    if not sets:
        raise PackError(voc_root, "no image sets given", "bad set")
    return [pair for spec in sets for pair in read_image_set(voc_root, spec.strip())]


def pack_voc(
    voc_root,
    sets,
    out_prefix,
    class_names=VOC_CLASSES,
    strict=False,
    num_workers=None,
    progress=True,
    shuffle_seed=None,
    other_classes=None,
):
    """Pack VOC image sets into ``out_prefix.{rec,idx,lst,classes.txt}``; return a PackSummary.

    ``sets``: list of ``"YEAR-SPLIT"`` specs (or one comma-separated string), packed in order.
    ``num_workers``: decode/encode processes (None: ``os.cpu_count()``; 0 or 1: in-process).
    Bad items (missing/unreadable image, broken XML, size mismatch) print one line to stderr
    and are skipped, or raise PackError if ``strict``. Images without any usable object are
    skipped (ImageDetRecordIter rejects them), also one line on stderr. Every skipped image
    is in ``summary.skipped``.
    ``other_classes``: objects of a class not in ``class_names`` are ``'drop'``: left out,
    the image kept with its other objects, and counted per class in
    ``summary.ignored_objects``; ``'skip'``: the image is left out (one line on stderr,
    reason ``'unknown class'``), ``strict`` or not; ``'error'``: PackError. None (default):
    ``'drop'``, or ``'error'`` if ``strict`` (an annotation's class outside the list, such as
    a misspelt name, is then a bad item).
    Output is all-or-nothing: on any error or interrupt no output file is created.
    ``shuffle_seed``: write the records in a random order drawn with this seed (still
    deterministic). ImageDetRecordIter shuffles only within the chunk of the file it has
    read, so a training file packed in set order (VOC2007, then VOC2012) would be walked
    nearly in order every epoch.
    """
    class_names = check_class_names(class_names)
    other_classes = check_other_classes(other_classes, strict)
    pairs = _collect_pairs(str(voc_root), sets)
    loader = VocItemLoader(voc_root, class_names, other_classes)
    return pack_items(pairs, loader, out_prefix, strict, num_workers, progress, shuffle_seed)
