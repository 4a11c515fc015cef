"""Writing outputs so that a reader (or a resumed run) never sees a partial file."""

import json
import os


def atomic_save(save_fn, path):
    """Write through ``save_fn(tmp_path)`` then rename, so readers never see a partial file."""
    tmp = "%s.tmp-%d" % (path, os.getpid())
    try:
        save_fn(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def write_json(path, obj):
    """JSON written atomically."""

    def save(tmp):
        with open(tmp, "w") as f:
            json.dump(obj, f, indent=2)

    atomic_save(save, path)


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
            f.writelines(json.dumps(r) + "\n" for r in records)

    atomic_save(save, path)
