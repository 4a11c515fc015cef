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

import dataclasses
import multiprocessing
import os
import signal
import sys
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path
from typing import Dict, List

import cv2
import mxnet as mx
import numpy as np
from tqdm import tqdm

from ..utils.errors import UserError
from .classes import VOC_CLASSES, check_class_names
from .records import OBJECT_WIDTH, make_label
from .writer import RecordWriter

JPEG_QUALITY = 95
NO_OBJECTS = "no usable objects"
UNKNOWN_CLASS = "unknown class"
# What to do with an object whose class is not in the class list: drop the object (the image
# is kept with its other objects), skip the whole image, or stop with an error.
OTHER_CLASSES_MODES = ("drop", "skip", "error")


class PackError(UserError):
    """A bad input item. ``str(err)`` is one line: ``"<path>: <problem>"``.

    ``kind`` is a short category used to group skipped items in the summary
    (e.g. ``'missing image'``, ``'broken annotation'``, ``'unknown class'``).
    """

    def __init__(self, path, problem, kind="error"):
        super().__init__(str(path), str(problem), kind)
        self.path = str(path)
        self.problem = " ".join(str(problem).split())  # always a single line
        self.kind = kind

    def __str__(self):
        return f"{self.path}: {self.problem}"


@dataclasses.dataclass
class Annotation:
    """One parsed VOC XML file.

    ``objects``: float32 (K, 6) rows ``[cls, xmin, ymin, xmax, ymax, difficult]``, corners
    normalized to [0, 1]. ``clipped``: kept boxes that had to be clipped to the image;
    ``dropped``: boxes dropped for zero (or negative) area after clipping; ``ignored``:
    class name -> objects left out because their class is not in the class list.
    """

    width: int
    height: int
    objects: np.ndarray
    clipped: int = 0
    dropped: int = 0
    ignored: Dict[str, int] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class Skipped:
    """An image left out of the output: its file, a short ``reason`` and the full message."""

    path: str
    reason: str
    message: str


@dataclasses.dataclass
class PackSummary:
    """What ``pack_voc`` wrote.

    ``images``: records written; ``objects``: class name -> object count (difficult ones
    included), in class order; ``difficult``: difficult objects; ``clipped`` / ``dropped``:
    box counts (see ``Annotation``); ``ignored_objects``: class name -> objects dropped
    because their class is not in the class list (``other_classes='drop'``; a misspelt class
    name in an annotation shows up here); ``skipped``: one ``Skipped`` per image left out;
    ``outputs``: suffix (``'.rec'`` ...) -> written path.
    """

    images: int = 0
    objects: Dict[str, int] = dataclasses.field(default_factory=dict)
    difficult: int = 0
    clipped: int = 0
    dropped: int = 0
    ignored_objects: Dict[str, int] = dataclasses.field(default_factory=dict)
    skipped: List[Skipped] = dataclasses.field(default_factory=list)
    outputs: Dict[str, str] = dataclasses.field(default_factory=dict)

    def skipped_by_reason(self):
        """Return ``{reason: count}`` over ``skipped``."""
        return dict(Counter(s.reason for s in self.skipped))

    def format(self, max_items=0):
        """Return a multi-line human-readable report.

        Skipped images are counted by reason; ``pack_voc`` already printed each one on
        stderr when it met it, so their messages are listed only up to ``max_items``.
        """
        lines = [
            f"packed {self.images} images -> {self.outputs.get('.rec', '?')}",
            f"objects: {sum(self.objects.values())} (difficult: {self.difficult})",
        ]
        width = max([len(n) for n in self.objects] + [1])
        lines += [f"  {name:<{width}}  {count}" for name, count in self.objects.items()]
        lines.append(
            f"boxes clipped to the image: {self.clipped}, dropped (zero area): {self.dropped}"
        )
        if self.ignored_objects:
            ignored = _format_counts(self.ignored_objects)
            lines.append(f"objects of classes not in the list, dropped: {ignored}")
        reasons = ", ".join(f"{r}: {n}" for r, n in sorted(self.skipped_by_reason().items()))
        lines.append(f"skipped images: {len(self.skipped)}" + (f" ({reasons})" if reasons else ""))
        lines += [f"  {s.message}" for s in self.skipped[:max_items]]
        if 0 < max_items < len(self.skipped):
            lines.append(f"  ... and {len(self.skipped) - max_items} more")
        return "\n".join(lines)


def _format_counts(counts):
    """``{'person': 12, 'dog': 3}`` -> ``'person 12, dog 3'`` (most frequent first)."""
    items = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    return ", ".join(f"{name} {count}" for name, count in items)


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
    return Annotation(width, height, objects, clipped, dropped, ignored)


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


def _encode_jpeg(img):
    """Return ``img`` (BGR uint8) encoded exactly as ``mx.recordio.pack_img`` encodes it."""
    packed = mx.recordio.pack_img(
        mx.recordio.IRHeader(0, 0, 0, 0), img, quality=JPEG_QUALITY, img_fmt=".jpg"
    )
    return mx.recordio.unpack(packed)[1]


class _ItemLoader:
    """Picklable worker: ``(image rel, xml rel)`` -> ``(error, annotation, jpeg bytes)``.

    ``error`` is a PackError (or None) saying why the image is left out; ``annotation`` is
    None if it could not be read; ``jpeg`` is None whenever ``error`` is set. An image
    without any usable object gets a PackError of kind ``NO_OBJECTS`` with its annotation.
    """

    def __init__(self, voc_root, class_names, other_classes="drop"):
        self.voc_root = str(voc_root)
        self.class_names = tuple(class_names)
        self.other_classes = other_classes

    def __call__(self, pair):
        try:
            return self._load(*pair)
        except PackError as err:
            return err, None, None

    def _load(self, img_rel, xml_rel):
        xml_path = os.path.join(self.voc_root, xml_rel)
        ann = parse_annotation(xml_path, self.class_names, self.other_classes)
        if len(ann.objects) == 0:
            problem = NO_OBJECTS
            if ann.ignored:
                problem += f" (only classes not in the list: {_format_counts(ann.ignored)})"
            return PackError(xml_path, problem, NO_OBJECTS), ann, None
        img_path = os.path.join(self.voc_root, img_rel)
        if not os.path.isfile(img_path):
            raise PackError(img_path, "image file not found", "missing image")
        img = cv2.imread(img_path, cv2.IMREAD_COLOR)
        if img is None:
            raise PackError(img_path, "cannot decode image", "unreadable image")
        if img.shape[:2] != (ann.height, ann.width):
            raise PackError(
                img_path,
                f"image is {img.shape[1]}x{img.shape[0]} but the "
                f"annotation <size> says {ann.width}x{ann.height}",
                "size mismatch",
            )
        return None, ann, _encode_jpeg(img)


def _worker_init():
    """Pool initializer: let only the parent handle Ctrl-C; keep OpenCV single-threaded."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    cv2.setNumThreads(1)


def _load_all(loader, pairs, num_workers):
    """Yield ``loader(pair)`` for every pair in order, in a process pool if num_workers > 1."""
    if num_workers <= 1:
        yield from map(loader, pairs)
        return
    # forkserver, not fork: a child forked from a parent whose OpenCV thread pool is running
    # (any cv2 call before packing) deadlocks in its first cv2 call.
    context = multiprocessing.get_context("forkserver")
    with context.Pool(num_workers, initializer=_worker_init) as pool:
        yield from pool.imap(loader, pairs, chunksize=8)


def _collect_pairs(voc_root, sets):
    """Return all ``(image rel, xml rel)`` pairs of ``sets`` in order (PackError if bad)."""
    if not os.path.isdir(voc_root):
        raise PackError(voc_root, "VOC root directory not found", "bad root")
    if isinstance(sets, str):
        sets = [s for s in sets.split(",") if s.strip()]
    if not sets:
        raise PackError(voc_root, "no image sets given", "bad set")
    return [pair for spec in sets for pair in read_image_set(voc_root, spec.strip())]


def _is_fatal(err, strict, other_classes):
    """Whether the PackError ``err`` of one item stops packing instead of skipping the item.

    An image without usable objects is never fatal; an unknown class is fatal unless
    ``other_classes`` is ``'skip'`` (with ``'drop'`` it never arises); any other bad item
    is fatal only if ``strict``.
    """
    if err.kind == NO_OBJECTS:
        return False
    if err.kind == UNKNOWN_CLASS:
        return other_classes != "skip"
    return strict


def _handle(result, pair, writer, summary, loader, strict):
    """Fold one loader result for ``pair`` into ``writer`` / ``summary``; raise a fatal one.

    Each skipped image is printed once here, on stderr, and appended to ``summary.skipped``.
    """
    err, ann, jpeg = result
    img_rel, _ = pair
    if ann is not None:
        summary.clipped += ann.clipped
        summary.dropped += ann.dropped
        for name, count in ann.ignored.items():
            summary.ignored_objects[name] = summary.ignored_objects.get(name, 0) + count
    if err is not None:
        if _is_fatal(err, strict, loader.other_classes):
            raise err
        tqdm.write(str(err), file=sys.stderr)
        summary.skipped.append(Skipped(err.path, err.kind, str(err)))
        return
    writer.write(img_rel, make_label(ann.width, ann.height, ann.objects), jpeg)
    summary.images += 1
    summary.difficult += int(ann.objects[:, 5].sum())
    for cls in ann.objects[:, 0].astype(int):
        summary.objects[loader.class_names[cls]] += 1


def _pack_items(pairs, loader, num_workers, writer, summary, strict, progress):
    """Load every pair (in order) and write the usable ones; fills ``summary``."""
    results = _load_all(loader, pairs, min(num_workers, max(len(pairs), 1)))
    try:
        with tqdm(total=len(pairs), unit="img", disable=not progress, file=sys.stderr) as bar:
            for pair, result in zip(pairs, results):
                _handle(result, pair, writer, summary, loader, strict)
                bar.update()
    finally:
        results.close()  # shuts the worker pool down at once, also on error / Ctrl-C


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
    if other_classes is None:
        other_classes = "error" if strict else "drop"
    if other_classes not in OTHER_CLASSES_MODES:
        raise ValueError(
            f"other_classes must be one of {', '.join(OTHER_CLASSES_MODES)}, not {other_classes!r}"
        )
    pairs = _collect_pairs(str(voc_root), sets)
    if shuffle_seed is not None:
        order = np.random.RandomState(shuffle_seed).permutation(len(pairs))
        pairs = [pairs[i] for i in order]
    if num_workers is None:
        num_workers = os.cpu_count() or 1
    summary = PackSummary(objects={name: 0 for name in class_names})
    try:
        Path(out_prefix).parent.mkdir(parents=True, exist_ok=True)
        writer = RecordWriter(out_prefix, class_names)
    except OSError as err:
        raise _write_error(err, out_prefix) from None
    try:
        loader = _ItemLoader(voc_root, class_names, other_classes)
        _pack_items(pairs, loader, int(num_workers), writer, summary, strict, progress)
        if summary.images == 0:
            raise PackError(
                writer.final[".rec"],
                f"nothing to pack: all {len(pairs)} listed images were skipped",
                "empty output",
            )
        summary.outputs = writer.commit()
    except OSError as err:
        writer.discard()
        raise _write_error(err, out_prefix) from None
    except BaseException:
        writer.discard()
        raise
    return summary


def _write_error(err, out_prefix):
    """An OSError while writing the outputs, as a PackError naming the file."""
    return PackError(err.filename or out_prefix, err.strerror or str(err), "write failed")
