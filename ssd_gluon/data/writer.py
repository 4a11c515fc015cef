"""The writer of record files (the layout of ``records``), shared by the packers and by the
copy that leaves out bad records (``verify``): all four files appear complete or not at all."""

import os

import mxnet as mx
import numpy as np

from ..utils.errors import CheckFailedError, last_line
from ..utils.files import sync_file
from .records import CATEGORIES_SUFFIX, OUTPUT_SUFFIXES


def _format_value(value):
    """Shortest text that reads back as the same float32 (``4``, ``0.25``, ``0.1``)."""
    return np.format_float_positional(np.float32(value), unique=True, trim="-")


class RecordWriter:
    """Writes ``out_prefix`` + each of ``OUTPUT_SUFFIXES`` under temporary names
    (``<name>.tmp-<pid>``); ``commit`` renames them into place, ``discard`` deletes them.
    With ``category_ids`` (the dataset's id of each class, COCO's) also
    ``CATEGORIES_SUFFIX``: ``id<TAB>name`` lines in class order."""

    def __init__(self, out_prefix, class_names, category_ids=None):
        suffixes = OUTPUT_SUFFIXES + ((CATEGORIES_SUFFIX,) if category_ids is not None else ())
        self.final = {s: f"{out_prefix}{s}" for s in suffixes}
        self.tmp = {s: f"{p}.tmp-{os.getpid()}" for s, p in self.final.items()}
        self.count = 0
        self.record, self.lst = None, None
        try:
            with open(self.tmp[".classes.txt"], "w") as f:
                f.write("".join(f"{name}\n" for name in class_names))
            if category_ids is not None:
                with open(self.tmp[CATEGORIES_SUFFIX], "w") as f:
                    f.write("".join(f"{i}\t{n}\n" for i, n in zip(category_ids, class_names)))
            self.record = mx.recordio.MXIndexedRecordIO(self.tmp[".idx"], self.tmp[".rec"], "w")
            self.lst = open(self.tmp[".lst"], "w")
        except BaseException:
            self.discard()
            raise

    def write(self, img_rel, label, jpeg, image_id=0):
        """Append one record (index = running count): float32 ``label`` (``make_label``)
        and the encoded image ``jpeg``, the dataset's ``image_id`` in the header's id2, and
        its .lst line naming ``img_rel``."""
        header = mx.recordio.IRHeader(0, label, self.count, image_id)
        try:
            self.record.write_idx(self.count, mx.recordio.pack(header, jpeg))
        except mx.base.MXNetError as err:  # a short write (full disk), in MXNet's words
            raise self._failed(err) from None
        values = "\t".join(_format_value(v) for v in label)
        self.lst.write(f"{self.count}\t{values}\t{img_rel}\n")
        self.count += 1

    def _close(self):
        if self.record is not None:
            self.record.close()
        if self.lst is not None:
            self.lst.close()

    def _failed(self, err):
        return CheckFailedError(
            "%s: could not be written (%s)" % (self.final[".rec"], last_line(err))
        )

    def commit(self):
        """Close, check that the .rec holds every byte written (MXNet's writer does not
        report a failed close), flush everything to disk and rename every temporary into
        place (.rec last); return the final paths."""
        written = self.record.tell()
        self._close()
        if os.path.getsize(self.tmp[".rec"]) != written:
            raise CheckFailedError(
                "%s: could not be written (%d of %d bytes on disk)"
                % (self.final[".rec"], os.path.getsize(self.tmp[".rec"]), written)
            )
        for path in self.tmp.values():
            sync_file(path)
        for suffix in sorted(self.tmp, key=lambda s: s == ".rec"):  # the .rec last
            os.replace(self.tmp[suffix], self.final[suffix])
        return dict(self.final)

    def discard(self):
        """Close and delete every temporary (never raises for missing ones)."""
        try:
            self._close()
        finally:
            for path in self.tmp.values():
                if os.path.exists(path):
                    os.remove(path)
