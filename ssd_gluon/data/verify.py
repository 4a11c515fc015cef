"""The check every record file passes before a tool reads it (see ``records`` for the layout).

MXNet's ``ImageDetRecordIter`` trusts its input: a truncated ``.rec`` is read up to where it
ends, an ``.idx`` of another file shards the wrong bytes, a NaN box trains to a loss of 0 and
an mAP of nan, a record without objects stops the reader with a message that names no file.
So each tool opens its files through ``open_records``, which walks the ``.rec`` once (record
headers and labels only, never the images) and checks:

- the file: RecordIO framing intact to the last byte, at least one record, detection labels
  (not a classification ``.rec``), the ``.idx`` listing exactly the records' offsets, the
  ``.lst`` (when present) holding the same labels in the same order;
- each record: the 4-value header ``[4, 6, width, height]``, at least one object, and per
  object a known class index, finite box corners inside [0, 1] with ``min < max``, a
  difficult flag of 0 or 1.

A damaged or foreign file is an error. Bad records are reported (count, first indices, file)
and then either fatal (``strict``) or left out: the tool reads a copy of the file without them,
written once into a temporary folder of this process (``Records.path``).
"""

import atexit
import dataclasses
import os
import shutil
import struct
import sys
import tempfile
from typing import List, Optional, Tuple

import numpy as np

from ..utils.errors import MissingFileError, UserError
from .records import (
    EMPTY_OBJECT,
    FLAG_CROWD,
    FLAG_DIFFICULT,
    HEADER_WIDTH,
    OBJECT_WIDTH,
    PACKERS,
    check_rec,
    read_category_ids,
    read_classes,
    read_lst,
)

# dmlc RecordIO framing: each part is [magic, lrecord] (uint32 little-endian), where lrecord
# holds the continuation flag (upper 3 bits: 0 whole record, 1 first, 2 middle, 3 last part)
# and the payload length (lower 29 bits); the payload is padded to 4 bytes. A record whose
# payload contains the magic word is split there, the word itself not stored.
MAGIC = 0xCED7230A
FRAME = struct.Struct("<II")
# MXNet's image record header IRHeader: flag (number of float32 labels that follow, 0 for a
# single label stored in the header), label, id, id2.
IR_HEADER = struct.Struct("<IfQQ")
# Box corners may exceed [0, 1] by float32 rounding of the packer's clipped values, no more.
BOX_TOLERANCE = 1e-5
# Other writers of .lst files (im2rec) print 6 decimals; ours prints float32 exactly.
LIST_TOLERANCE = 1e-5
SHOWN = 5  # bad records named in a report
HINT = "re-pack it with " + PACKERS
STRICT_HELP = "stop at a bad record (default: leave bad records out, with a warning)"


@dataclasses.dataclass
class Records:
    """A checked record file. ``path``: what the readers open (``source``, or a copy without
    its ``bad`` records); ``count``: records read (bad ones excluded); ``max_objects``: the
    most objects in one of them; ``classes``: names from ``PREFIX.classes.txt`` or None;
    ``category_ids``: the dataset's id of each class (``PREFIX.categories.txt``) or None;
    ``offsets``: byte offset of each record read in ``path``; ``image_ids``: the dataset's
    image id of each (header id2: COCO's, 0 for VOC); ``bad``: (index, problem) of each
    record left out (index = position in ``source``)."""

    path: str
    source: str
    count: int
    max_objects: int
    classes: Optional[List[str]]
    category_ids: Optional[List[int]]
    offsets: List[int]
    image_ids: List[int]
    bad: List[Tuple[int, str]]

    def shard_sizes(self, num_parts):
        """Images in each of the ``num_parts`` shards that ImageDetRecordIter reads: it
        splits the ``.rec`` by bytes (part k starts at the first record at or after byte
        k*size/num_parts), so shards differ in size; ranks must agree on a common number of
        batches or Horovod's allreduce deadlocks."""
        total = os.path.getsize(self.path)
        bounds = [total * k // num_parts for k in range(num_parts + 1)]
        return [
            sum(1 for o in self.offsets if bounds[k] <= o < bounds[k + 1]) for k in range(num_parts)
        ]


def open_records(rec_path, num_classes=None, strict=False, report=True):
    """Check ``rec_path`` (see the module doc) and return its ``Records``.

    ``num_classes``: class indices must lie in [0, num_classes) (default: the length of the
    file's ``classes.txt``, else unchecked). ``strict``: a bad record is an error instead of
    being left out with a warning on stderr (printed when ``report``: one worker of several
    is enough). Raises ``UserError`` naming the file for anything unusable."""
    rec_path = check_rec(rec_path)
    classes, category_ids = read_classes(rec_path), read_category_ids(rec_path)
    if num_classes is None and classes is not None:
        num_classes = len(classes)
    labels, offsets, image_ids = _walk(rec_path)
    _check_index(rec_path, offsets)
    names = _check_list(rec_path, labels)
    bad = [(i, p) for i, p in enumerate(record_problem(lab, num_classes) for lab in labels) if p]
    if len(bad) == len(labels):
        raise UserError(
            "%s: none of its %d records is usable (%s); %s"
            % (rec_path, len(labels), _first(bad), HINT)
        )
    if bad and strict:
        raise UserError(
            "%s: %d of %d records are bad (%s); fix or %s, or leave out --strict-data to "
            "skip them" % (rec_path, len(bad), len(labels), _first(bad), HINT)
        )
    path, left_out = rec_path, {i for i, _ in bad}
    if bad:
        if report:
            print(
                "warning: %s: %d of %d records are bad and left out (%s); --strict-data "
                "makes this an error" % (rec_path, len(bad), len(labels), _first(bad)),
                file=sys.stderr,
                flush=True,
            )
        path, offsets = _copy_without(rec_path, left_out, classes, category_ids, names)
    good = [lab for i, lab in enumerate(labels) if i not in left_out]
    image_ids = [v for i, v in enumerate(image_ids) if i not in left_out]
    max_objects = max((len(lab) - HEADER_WIDTH) // OBJECT_WIDTH for lab in good)
    return Records(
        path, rec_path, len(good), max_objects, classes, category_ids, offsets, image_ids, bad
    )


def record_problem(label, num_classes=None):
    """Why one record's float32 ``label`` (the layout of ``records.make_label``) cannot be
    trained or evaluated on, or None."""
    if len(label) < HEADER_WIDTH or label[0] != HEADER_WIDTH or label[1] != OBJECT_WIDTH:
        return "label header %s is not [%d, %d, width, height]" % (
            _values(label[:2]),
            HEADER_WIDTH,
            OBJECT_WIDTH,
        )
    if not (np.isfinite(label[2:4]).all() and (label[2:4] > 0).all()):
        return "image size %s is not positive" % _values(label[2:4])
    if (len(label) - HEADER_WIDTH) % OBJECT_WIDTH:
        return "label length %d is not 4 + 6 per object" % len(label)
    objects = np.asarray(label[HEADER_WIDTH:], np.float64).reshape(-1, OBJECT_WIDTH)
    if len(objects) == 0:
        return "no objects"
    if len(objects) == 1 and tuple(objects[0]) == EMPTY_OBJECT:
        return None  # an image without objects, kept for evaluation
    for k, (cls, x0, y0, x1, y1, difficult) in enumerate(objects):
        box = np.array([x0, y0, x1, y1])
        problem = None
        if not np.isfinite(objects[k]).all():
            problem = "non-finite value"
        elif cls != int(cls) or cls < 0 or (num_classes is not None and cls >= num_classes):
            problem = "class %g not in 0..%s" % (cls, num_classes - 1 if num_classes else "")
        elif (box < -BOX_TOLERANCE).any() or (box > 1 + BOX_TOLERANCE).any():
            problem = "box %s outside [0, 1]" % _values(box)
        elif not (x0 < x1 and y0 < y1):
            problem = "box %s has min >= max" % _values(box)
        elif difficult not in (0, FLAG_DIFFICULT, FLAG_CROWD):
            problem = "flag %g (not 0, %d difficult or %d crowd)" % (
                difficult,
                FLAG_DIFFICULT,
                FLAG_CROWD,
            )
        if problem:
            return "object %d: %s" % (k, problem)
    return None


def _values(values):
    return "[%s]" % ", ".join("%g" % v for v in values)


def _first(bad):
    shown = "; ".join("record %d: %s" % item for item in bad[:SHOWN])
    return shown + ("; ..." if len(bad) > SHOWN else "")


def _walk(rec_path):
    """Every record's float32 label, byte offset and image id (header id2), reading only
    frames and headers."""
    size = os.path.getsize(rec_path)
    if size == 0:
        raise UserError("%s: empty file (no records); %s" % (rec_path, HINT))
    labels, offsets, image_ids = [], [], []
    with open(rec_path, "rb") as f:
        pos = 0
        while pos < size:
            head, end = _read_head(f, pos, size, rec_path)
            flag, _, _, image_id = IR_HEADER.unpack_from(head)
            if flag == 0:
                raise UserError(
                    "%s: record %d holds a single label (a classification .rec), not "
                    "detection labels; %s" % (rec_path, len(labels), HINT)
                )
            need = IR_HEADER.size + 4 * flag
            if len(head) < need:
                head, _ = _read_head(f, pos, size, rec_path, need)
            if len(head) < need:
                raise UserError(
                    "%s: record %d at byte %d is shorter than its %d labels; %s"
                    % (rec_path, len(labels), pos, flag, HINT)
                )
            labels.append(np.frombuffer(head, np.float32, flag, IR_HEADER.size))
            offsets.append(pos)
            image_ids.append(image_id)
            pos = end
    return labels, offsets, image_ids


def _read_head(f, pos, size, rec_path, need=IR_HEADER.size + 4 * 64):
    """The first ``need`` payload bytes of the record at ``pos`` (fewer if it is shorter,
    joining split parts) and the offset after its last part."""
    data, first = b"", True
    while True:
        f.seek(pos)
        frame = f.read(FRAME.size)
        if len(frame) < FRAME.size:
            raise _truncated(rec_path, pos, size)
        magic, lrecord = FRAME.unpack(frame)
        if magic != MAGIC:
            raise UserError(
                "%s: no RecordIO record at byte %d (damaged, or not a .rec); %s"
                % (rec_path, pos, HINT)
            )
        cflag, length = lrecord >> 29, lrecord & ((1 << 29) - 1)
        if (cflag in (2, 3)) == first:
            raise UserError(
                "%s: RecordIO record at byte %d is split wrongly (damaged); %s"
                % (rec_path, pos, HINT)
            )
        end = pos + FRAME.size + (length + 3) // 4 * 4
        if end > size:
            raise _truncated(rec_path, pos, size)
        if len(data) < need:
            if not first:
                data += struct.pack("<I", MAGIC)
            data += f.read(min(length, need - len(data)))
        if cflag in (0, 3):
            return data[:need], end
        pos, first = end, False


def _truncated(rec_path, pos, size):
    return UserError(
        "%s: truncated: the record at byte %d ends past the end of the file (%d bytes); %s"
        % (rec_path, pos, size, HINT)
    )


def _check_index(rec_path, offsets):
    """The ``.idx`` must list the offsets of exactly the records found, in file order."""
    idx = rec_path[:-4] + ".idx"
    if not os.path.isfile(idx):
        raise MissingFileError("%s: index file not found next to the .rec; %s" % (idx, HINT))
    try:
        with open(idx) as f:
            listed = sorted(int(line.split("\t")[1]) for line in f if line.strip())
    except (ValueError, IndexError):
        raise UserError(
            "%s: not an index file (lines 'key<TAB>offset'); %s" % (idx, HINT)
        ) from None
    if listed != offsets:
        raise UserError(
            "%s: lists %d records, %s holds %d%s: the .idx belongs to another file or the .rec "
            "was cut short; %s"
            % (
                idx,
                len(listed),
                os.path.basename(rec_path),
                len(offsets),
                "" if len(listed) != len(offsets) else " at other offsets",
                HINT,
            )
        )


def _check_list(rec_path, labels):
    """A ``.lst`` beside the ``.rec``, when there is one, must hold the same labels; returns
    its image paths (None without a ``.lst``)."""
    rows = read_lst(rec_path)
    if rows is None:
        return None
    lst = rec_path[:-4] + ".lst"
    if len(rows) != len(labels):
        problem = "%d rows for %d records" % (len(rows), len(labels))
    else:
        wrong = [
            i
            for i, ((values, _), label) in enumerate(zip(rows, labels))
            if values.shape != label.shape
            or not np.allclose(values, label, rtol=0, atol=LIST_TOLERANCE, equal_nan=True)
        ]
        if not wrong:
            return [name for _, name in rows]
        problem = "row %d holds other labels than record %d" % (wrong[0], wrong[0])
    raise UserError(
        "%s: does not match %s (%s): a stale list; %s"
        % (lst, os.path.basename(rec_path), problem, HINT)
    )


def _copy_without(rec_path, bad, classes, category_ids, names):
    """Write the records of ``rec_path`` not in ``bad`` into this process's temporary
    folder (``.rec``, ``.idx``, ``.lst`` with the image paths ``names`` and ``.classes.txt``);
    return the copy's path and its record offsets."""
    import mxnet as mx

    from .writer import RecordWriter

    prefix = os.path.join(_scratch(), os.path.basename(rec_path)[:-4])
    reader = mx.recordio.MXIndexedRecordIO(rec_path[:-4] + ".idx", rec_path, "r")
    writer = RecordWriter(prefix, classes or [], category_ids)
    try:
        for i in range(len(reader.keys)):
            raw = reader.read()
            if i not in bad:
                header, payload = mx.recordio.unpack(raw)
                name = names[i] if names else "record-%d" % i
                writer.write(name, header.label, payload, header.id2)
        paths = writer.commit()
    except BaseException:
        writer.discard()
        raise
    finally:
        reader.close()
    return paths[".rec"], _walk(paths[".rec"])[1]


_SCRATCH = []


def _scratch():
    """A temporary folder for this process, removed at exit."""
    if not _SCRATCH:
        _SCRATCH.append(tempfile.mkdtemp(prefix="ssd_gluon-records-"))
        atexit.register(shutil.rmtree, _SCRATCH[0], True)
    return _SCRATCH[0]
