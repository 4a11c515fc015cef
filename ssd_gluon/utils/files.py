"""Writing outputs so that they are complete or absent: every file is written under a
temporary name, flushed to disk, optionally checked, and only then renamed into place; a
write that fails is an error naming the file, and leaves nothing behind."""

import json
import math
import os

from .errors import CheckFailedError, UserError

TMP_MARK = ".tmp-"  # temporary names are PATH.tmp-PID


def atomic_save(save_fn, path, check=None):
    """Write ``path`` through ``save_fn(tmp_path)``, then ``check(tmp_path)`` (raises when the
    written file is not what it should be), then rename. An OSError (disk full, read-only,
    a folder in the way) becomes a CheckFailedError naming ``path``; the temporary file is
    removed whatever happens."""
    tmp = "%s%s%d" % (path, TMP_MARK, os.getpid())
    try:
        save_fn(tmp)
        sync_file(tmp)
        if check is not None:
            check(tmp)
        os.replace(tmp, path)
    except OSError as err:
        raise CheckFailedError(
            "%s: could not be written (%s)" % (path, err.strerror or err)
        ) from None
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def sync_file(path):
    """Flush ``path`` to the disk: a file renamed before its data reached the disk can be
    empty after a crash, and some writers (MXNet's) do not report a failed close."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def remove_temporaries(folder):
    """Delete the temporaries that killed writers left in ``folder``; returns their names."""
    if not os.path.isdir(folder):
        return []
    left = sorted(f for f in os.listdir(folder) if TMP_MARK in f)
    for name in left:
        os.remove(os.path.join(folder, name))
    return left


def output_folder(path, flag="--out"):
    """Create the output folder ``path`` (parents too); a one-line error naming ``flag``
    when it is a file or cannot be created or written."""
    if os.path.exists(path) and not os.path.isdir(path):
        raise UserError("%s %s: is a file, not a folder" % (flag, path))
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as err:
        raise UserError(
            "%s %s: cannot create the folder (%s)" % (flag, path, err.strerror)
        ) from None
    if not os.access(path, os.W_OK):
        raise UserError("%s %s: the folder is not writable" % (flag, path))
    return path


def output_file(path, flag="--out"):
    """Check that the output file ``path`` can be written (its folder is created); a one-line
    error naming ``flag`` otherwise."""
    if os.path.isdir(path):
        raise UserError("%s %s: is a folder, expected a file name" % (flag, path))
    output_folder(os.path.dirname(os.path.abspath(path)), flag)
    return path


def finite(obj):
    """``obj`` with every NaN or infinity (nested in dicts, lists, tuples) replaced by None,
    so that the JSON written is valid JSON (a class without ground truth has AP NaN)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [finite(v) for v in obj]
    return obj


def write_json(path, obj, indent=2):
    """JSON written atomically; non-finite numbers are written as null. ``indent=None``
    writes it compact (large files: detections)."""

    def save(tmp):
        with open(tmp, "w") as f:
            json.dump(finite(obj), f, indent=indent, allow_nan=False)

    atomic_save(save, path)


def append_jsonl(path, record):
    """One JSON line appended to ``path`` (non-finite numbers as null); a failed write is an
    error naming the file. A reader skips a line torn by a killed writer (``read_jsonl``)."""
    try:
        with open(path, "a") as f:
            f.write(json.dumps(finite(record), allow_nan=False) + "\n")
    except OSError as err:
        raise CheckFailedError("%s: could not be written (%s)" % (path, err.strerror)) from None


def read_json(path):
    """The object in a JSON file, or None when it is absent or does not parse."""
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def read_jsonl(path):
    """Records of a JSON-lines file ([] when absent); a torn last line (a killed writer) is
    skipped."""
    if not os.path.isfile(path):
        return []
    records = []
    with open(path) as f:
        for line in f:
            try:
                records.append(json.loads(line))
            except ValueError:
                pass
    return records


def rewrite_jsonl(path, records):
    """Replace a JSON-lines file atomically."""

    def save(tmp):
        with open(tmp, "w") as f:
            f.writelines(json.dumps(finite(r), allow_nan=False) + "\n" for r in records)

    atomic_save(save, path)
