"""What every packer shares (VOC trees, plain folders, COCO JSON): the bad-item error, the
per-image annotation, the summary, image decoding, and the parallel loop that loads items
and writes the usable ones into one record file (``writer.RecordWriter``: complete or
absent).

A packer supplies a list of items, each a tuple whose first element is the image path
relative to the packer's root (written into the ``.lst``), and a picklable loader
``loader(item) -> (error, annotation, jpeg bytes)`` with attributes ``class_names``,
``other_classes`` and ``keep_empty``. ``pack_items`` does the rest.
"""

import dataclasses
import multiprocessing
import os
import signal
import sys
from collections import Counter
from pathlib import Path
from typing import Dict, List

import cv2
import mxnet as mx
import numpy as np
from tqdm import tqdm

from ..data.classes import check_class_names
from ..data.records import EMPTY_OBJECT, FLAG_CROWD, FLAG_DIFFICULT, make_label
from ..data.writer import RecordWriter
from ..utils.errors import UserError

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
    """The objects of one image, as a packer read them.

    ``objects``: float32 (K, 6) rows ``[cls, xmin, ymin, xmax, ymax, flag]``, corners
    normalized to [0, 1], flag ``records.FLAG_*`` (0, difficult or crowd). ``clipped``: kept
    boxes that had to be clipped to the image; ``dropped``: boxes dropped for zero (or
    negative) area after clipping; ``ignored``: class name -> objects left out because their
    class is not in the class list. ``path``: the annotation file (named in messages);
    ``image_id``: the dataset's own id of the image (COCO), stored in the record header.
    """

    width: int
    height: int
    objects: np.ndarray
    clipped: int = 0
    dropped: int = 0
    ignored: Dict[str, int] = dataclasses.field(default_factory=dict)
    path: str = ""
    image_id: int = 0


@dataclasses.dataclass
class Skipped:
    """An image left out of the output: its file, a short ``reason`` and the full message."""

    path: str
    reason: str
    message: str


@dataclasses.dataclass
class PackSummary:
    """What a packer wrote.

    ``images``: records written (``empty`` of them without objects, kept for evaluation);
    ``objects``: class name -> object count (difficult and crowd ones included), in class
    order; ``difficult`` / ``crowd``: flagged objects; ``clipped`` / ``dropped``:
    box counts (see ``Annotation``); ``ignored_objects``: class name -> objects dropped
    because their class is not in the class list (``other_classes='drop'``; a misspelt class
    name in an annotation shows up here); ``skipped``: one ``Skipped`` per image left out;
    ``outputs``: suffix (``'.rec'`` ...) -> written path.
    """

    images: int = 0
    empty: int = 0
    objects: Dict[str, int] = dataclasses.field(default_factory=dict)
    difficult: int = 0
    crowd: int = 0
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

        Skipped images are counted by reason; the packer already printed each one on
        stderr when it met it, so their messages are listed only up to ``max_items``.
        """
        lines = [
            f"packed {self.images} images -> {self.outputs.get('.rec', '?')}",
            f"objects: {sum(self.objects.values())} (difficult: {self.difficult}"
            + (f", crowd: {self.crowd}" if self.crowd else "")
            + ")",
        ]
        if self.empty:
            lines[0] += f" ({self.empty} without objects)"
        width = max([len(n) for n in self.objects] + [1])
        lines += [f"  {name:<{width}}  {count}" for name, count in self.objects.items()]
        lines.append(
            f"boxes clipped to the image: {self.clipped}, dropped (zero area): {self.dropped}"
        )
        if self.ignored_objects:
            ignored = format_counts(self.ignored_objects)
            lines.append(f"objects of classes not in the list, dropped: {ignored}")
        reasons = ", ".join(f"{r}: {n}" for r, n in sorted(self.skipped_by_reason().items()))
        lines.append(f"skipped images: {len(self.skipped)}" + (f" ({reasons})" if reasons else ""))
        lines += [f"  {s.message}" for s in self.skipped[:max_items]]
        if 0 < max_items < len(self.skipped):
            lines.append(f"  ... and {len(self.skipped) - max_items} more")
        return "\n".join(lines)


def format_counts(counts):
    """``{'person': 12, 'dog': 3}`` -> ``'person 12, dog 3'`` (most frequent first)."""
    items = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    return ", ".join(f"{name} {count}" for name, count in items)


def encode_jpeg(img):
    """Return ``img`` (BGR uint8) encoded exactly as ``mx.recordio.pack_img`` encodes it."""
    packed = mx.recordio.pack_img(
        mx.recordio.IRHeader(0, 0, 0, 0), img, quality=JPEG_QUALITY, img_fmt=".jpg"
    )
    return mx.recordio.unpack(packed)[1]


def read_image(path):
    """The image at ``path`` as 8-bit BGR (H, W, 3), whatever OpenCV reads: 16-bit images
    are scaled to 8 bits, an alpha channel is dropped, grey becomes three channels. A
    PackError naming the file if it is missing or does not decode."""
    if not os.path.isfile(path):
        raise PackError(path, "image file not found", "missing image")
    img = cv2.imread(path, cv2.IMREAD_UNCHANGED)
    if img is None:
        raise PackError(path, "cannot decode image", "unreadable image")
    if img.dtype == np.uint16:
        img = (img.astype(np.float32) / 257.0 + 0.5).astype(np.uint8)  # 65535 -> 255
    elif img.dtype != np.uint8:
        raise PackError(path, f"unsupported pixel type {img.dtype}", "unreadable image")
    if img.ndim == 2:
        img = cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
    elif img.shape[2] == 4:
        img = cv2.cvtColor(img, cv2.COLOR_BGRA2BGR)
    return img


def load_jpeg(img_path, ann):
    """The image at ``img_path`` re-encoded as the record's JPEG, after checking that its
    size is the one the annotation ``ann`` gives (PackError otherwise)."""
    img = read_image(img_path)
    if img.shape[:2] != (ann.height, ann.width):
        raise PackError(
            img_path,
            f"image is {img.shape[1]}x{img.shape[0]} but the annotation says "
            f"{ann.width}x{ann.height}",
            "size mismatch",
        )
    return encode_jpeg(img)


def _worker_init():
    """Pool initializer: let only the parent handle Ctrl-C; keep OpenCV single-threaded."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    cv2.setNumThreads(1)


def _load_all(loader, items, num_workers):
    """Yield ``loader(item)`` for every item in order, in a process pool if num_workers > 1."""
    if num_workers <= 1:
        yield from map(loader, items)
        return
    # forkserver, not fork: a child forked from a parent whose OpenCV thread pool is running
    # (any cv2 call before packing) deadlocks in its first cv2 call.
    context = multiprocessing.get_context("forkserver")
    with context.Pool(num_workers, initializer=_worker_init) as pool:
        yield from pool.imap(loader, items, chunksize=8)


def check_other_classes(other_classes, strict):
    """The ``other_classes`` mode to use: None means ``'drop'``, or ``'error'`` if ``strict``
    (an annotation's class outside the list, such as a misspelt name, is then a bad item)."""
    if other_classes is None:
        return "error" if strict else "drop"
    if other_classes not in OTHER_CLASSES_MODES:
        raise ValueError(
            f"other_classes must be one of {', '.join(OTHER_CLASSES_MODES)}, not {other_classes!r}"
        )
    return other_classes


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


def _handle(result, item, writer, summary, loader, strict):
    """Fold one loader result for ``item`` into ``writer`` / ``summary``; raise a fatal one.

    Each skipped image is printed once here, on stderr, and appended to ``summary.skipped``;
    so is each annotation whose boxes were clipped or dropped (one line, image kept).
    """
    err, ann, jpeg = result
    if ann is not None:
        summary.clipped += ann.clipped
        summary.dropped += ann.dropped
        for name, count in ann.ignored.items():
            summary.ignored_objects[name] = summary.ignored_objects.get(name, 0) + count
        if (ann.clipped or ann.dropped) and err is None:
            tqdm.write(
                f"{ann.path}: {ann.clipped} box(es) clipped to the image, {ann.dropped} "
                "dropped (zero area after clipping)",
                file=sys.stderr,
            )
    if err is not None:
        if _is_fatal(err, strict, loader.other_classes):
            raise err
        tqdm.write(str(err), file=sys.stderr)
        summary.skipped.append(Skipped(err.path, err.kind, str(err)))
        return
    # ImageDetRecordIter rejects a label without objects; one placeholder object of class
    # -1 (dropped by the reader, like padding) stands for an image without any.
    objects = ann.objects if len(ann.objects) else np.array([EMPTY_OBJECT], np.float32)
    writer.write(item[0], make_label(ann.width, ann.height, objects), jpeg, ann.image_id)
    summary.images += 1
    summary.empty += int(len(ann.objects) == 0)
    summary.difficult += int((ann.objects[:, 5] == FLAG_DIFFICULT).sum())
    summary.crowd += int((ann.objects[:, 5] == FLAG_CROWD).sum())
    for cls in ann.objects[:, 0].astype(int):
        summary.objects[loader.class_names[cls]] += 1


def _pack_items(items, loader, num_workers, writer, summary, strict, progress):
    """Load every item (in order) and write the usable ones; fills ``summary``."""
    results = _load_all(loader, items, min(num_workers, max(len(items), 1)))
    try:
        with tqdm(total=len(items), unit="img", disable=not progress, file=sys.stderr) as bar:
            for item, result in zip(items, results):
                _handle(result, item, writer, summary, loader, strict)
                bar.update()
    finally:
        results.close()  # shuts the worker pool down at once, also on error / Ctrl-C


def pack_items(
    items,
    loader,
    out_prefix,
    strict=False,
    num_workers=None,
    progress=True,
    shuffle_seed=None,
    category_ids=None,
):
    """Load every item with ``loader`` (see the module doc) and write the usable ones into
    ``out_prefix.{rec,idx,lst,classes.txt}`` with ``loader.class_names``; return a
    PackSummary. Bad items print one line on stderr and are skipped, or raise PackError if
    ``strict`` (``_is_fatal``); each annotation whose boxes were clipped or dropped gets a
    line too (not an error).
    ``num_workers``: decode/encode processes (None: ``os.cpu_count()``; 0 or 1: in-process).
    ``shuffle_seed``: write the records in a random order drawn with this seed (still
    deterministic): ImageDetRecordIter shuffles only within the chunk of the file it has
    read, so a training file packed in source order would be walked nearly in order every
    epoch. ``category_ids``: the dataset's id of each class (``RecordWriter``). Output is
    all-or-nothing: on any error or interrupt no output file is created."""
    class_names = check_class_names(loader.class_names)
    if shuffle_seed is not None:
        order = np.random.RandomState(shuffle_seed).permutation(len(items))
        items = [items[i] for i in order]
    if num_workers is None:
        num_workers = os.cpu_count() or 1
    summary = PackSummary(objects={name: 0 for name in class_names})
    try:
        Path(out_prefix).parent.mkdir(parents=True, exist_ok=True)
        writer = RecordWriter(out_prefix, class_names, category_ids)
    except OSError as err:
        raise _write_error(err, out_prefix) from None
    try:
        _pack_items(items, loader, int(num_workers), writer, summary, strict, progress)
        if summary.images == 0:
            raise PackError(
                writer.final[".rec"],
                f"nothing to pack: all {len(items)} listed images were skipped",
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
