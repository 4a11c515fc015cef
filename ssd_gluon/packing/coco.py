"""COCO JSON -> records: ``instances_*.json`` (MS COCO, or what CVAT, Label Studio, Roboflow and
labelme export) plus its image folder, packed into the layout of ``records`` like VOC.

- Categories become class indices in category-id order (gluoncv's contiguous mapping); their
  names go to ``PREFIX.classes.txt`` and their ids to ``PREFIX.categories.txt``, so that
  detections can be written back with COCO's ids.
- Boxes ``[x, y, w, h]`` in pixels become corners normalized by the image size
  (``x / width``, ``(x + w) / width``: COCO's boxes are continuous, no VOC one-pixel shift),
  clipped to [0, 1]; a box of non-positive size, or of zero area once clipped, is dropped.
- ``iscrowd`` objects are kept with ``records.FLAG_CROWD``: the COCO metric treats them as
  crowd regions, training ignores them (as the VOC metric ignores ``difficult`` ones).
- Images without annotations are left out (training sets) or, with ``keep_empty``
  (evaluation sets), packed without objects: gluoncv's ``skip_empty`` semantics.
- The COCO image id is stored in each record's header (``id2``).

The JSON is checked as it is read: a file that is not COCO, duplicate category or image ids,
or a malformed entry is a one-line error naming the file; an annotation that refers to an
absent image or category is one line (skipped, or an error with ``strict``).
"""

import json
import os
import sys

import numpy as np

from ..data.classes import check_class_names
from ..data.records import FLAG_CROWD, OBJECT_WIDTH
from ..utils.errors import MissingFileError
from .common import (
    NO_OBJECTS,
    UNKNOWN_CLASS,
    Annotation,
    PackError,
    check_other_classes,
    load_jpeg,
    pack_items,
)


def _fail(path, problem):
    return PackError(path, problem, "broken annotation")


def _number_list(entry, key, length, where, path):
    values = entry.get(key)
    if not isinstance(values, list) or len(values) != length:
        raise _fail(path, f"{where}: '{key}' is not a list of {length} numbers")
    try:
        return [float(v) for v in values]
    except (TypeError, ValueError):
        raise _fail(path, f"{where}: '{key}' is not a list of {length} numbers") from None


def _int(entry, key, where, path):
    value = entry.get(key)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != int(value):
        raise _fail(path, f"{where}: '{key}' is not an integer ({value!r})")
    return int(value)


def read_coco(json_path, strict=False):
    """Parse and check a COCO instances file.

    Returns ``(categories, images, objects)``: categories ``[(id, name)]`` sorted by id,
    images ``[(id, file_name, width, height)]`` in file order, and objects
    ``{image id: [(category name, x, y, w, h, iscrowd)]}``. PackError (naming the file) for
    a file that is not COCO or holds duplicate ids; an annotation of an absent image or
    category prints one line on stderr and is left out (PackError if ``strict``)."""
    if not os.path.isfile(json_path):
        raise MissingFileError(f"{json_path}: annotation file not found")
    try:
        with open(json_path) as f:
            data = json.load(f)
    except (ValueError, UnicodeDecodeError) as err:
        raise _fail(json_path, f"not a JSON file ({err})") from None
    if not isinstance(data, dict):
        raise _fail(json_path, "not a COCO instances file (the top level is not an object)")
    for key in ("images", "annotations", "categories"):
        if not isinstance(data.get(key), list):
            raise _fail(json_path, f"not a COCO instances file: no '{key}' list")
    categories, names = {}, set()
    for k, c in enumerate(data["categories"]):
        where = f"categories[{k}]"
        if not isinstance(c, dict) or not isinstance(c.get("name"), str) or not c["name"]:
            raise _fail(json_path, f"{where}: no 'name'")
        cid = _int(c, "id", where, json_path)
        if cid in categories:
            raise _fail(json_path, f"category id {cid} appears twice")
        if c["name"] in names:
            raise _fail(json_path, f"category name {c['name']!r} appears twice")
        categories[cid] = c["name"]
        names.add(c["name"])
    images, seen = [], set()
    for k, im in enumerate(data["images"]):
        where = f"images[{k}]"
        if not isinstance(im, dict) or not isinstance(im.get("file_name"), str):
            raise _fail(json_path, f"{where}: no 'file_name'")
        iid = _int(im, "id", where, json_path)
        width, height = (_int(im, key, where, json_path) for key in ("width", "height"))
        if iid in seen:
            raise _fail(json_path, f"image id {iid} appears twice")
        if width <= 0 or height <= 0:
            raise _fail(json_path, f"{where}: size {width}x{height} is not positive")
        seen.add(iid)
        images.append((iid, im["file_name"], width, height))
    objects = {iid: [] for iid, _, _, _ in images}
    for k, a in enumerate(data["annotations"]):
        where = f"annotations[{k}]"
        if not isinstance(a, dict):
            raise _fail(json_path, f"{where}: not an object")
        iid, cid = _int(a, "image_id", where, json_path), _int(a, "category_id", where, json_path)
        box = _number_list(a, "bbox", 4, where, json_path)
        problem = None
        if iid not in objects:
            problem = f"{where} (id {a.get('id')}) refers to image {iid}, not in 'images'"
        elif cid not in categories:
            problem = f"{where} (id {a.get('id')}) has category {cid}, not in 'categories'"
        if problem:
            if strict:
                raise _fail(json_path, problem)
            print(f"{json_path}: {problem}; left out", file=sys.stderr)
            continue
        objects[iid].append((categories[cid], *box, int(bool(a.get("iscrowd", 0)))))
    return sorted(categories.items()), images, objects


class CocoItemLoader:
    """Picklable worker (``packing``'s loader contract): item ``(file_name, image id, width,
    height, objects)`` -> ``(error, annotation, jpeg)``; images under ``image_dir``."""

    def __init__(self, image_dir, json_path, class_names, other_classes, keep_empty):
        self.image_dir, self.json_path = str(image_dir), str(json_path)
        self.class_names = tuple(class_names)
        self.other_classes = other_classes
        self.keep_empty = keep_empty

    def __call__(self, item):
        try:
            return self._load(*item)
        except PackError as err:
            return err, None, None

    def _load(self, file_name, image_id, width, height, objects):
        img_path = os.path.join(self.image_dir, file_name)
        where = f"{self.json_path} image {image_id} ({file_name})"
        index = {name: i for i, name in enumerate(self.class_names)}
        rows, clipped, dropped, ignored = [], 0, 0, {}
        for name, x, y, w, h, crowd in objects:
            if name not in index:
                if self.other_classes != "drop":
                    raise PackError(where, f"unknown class {name!r}", UNKNOWN_CLASS)
                ignored[name] = ignored.get(name, 0) + 1
                continue
            raw = np.array([x / width, y / height, (x + w) / width, (y + h) / height])
            corners = np.clip(raw, 0.0, 1.0).astype(np.float32)
            if w <= 0 or h <= 0 or corners[2] <= corners[0] or corners[3] <= corners[1]:
                dropped += 1
                continue
            clipped += bool(np.any(raw != np.clip(raw, 0.0, 1.0)))
            rows.append([index[name], *corners, FLAG_CROWD if crowd else 0])
        array = np.array(rows, np.float32).reshape(-1, OBJECT_WIDTH)
        ann = Annotation(width, height, array, clipped, dropped, ignored, where, image_id)
        if len(rows) == 0 and not self.keep_empty:
            problem = NO_OBJECTS + (" (no annotations)" if not objects else "")
            return PackError(where, problem, NO_OBJECTS), ann, None
        return None, ann, load_jpeg(img_path, ann)


def pack_coco(
    json_path,
    image_dir,
    out_prefix,
    class_names=None,
    strict=False,
    num_workers=None,
    progress=True,
    shuffle_seed=None,
    other_classes=None,
    keep_empty=False,
):
    """Pack a COCO instances file and its images into ``out_prefix.{rec,idx,lst,classes.txt,
    categories.txt}``; return a ``packing.PackSummary``.

    ``class_names``: None packs every category (in id order); a list keeps those classes
    (in that order), the objects of other categories being handled by ``other_classes`` as
    in ``pack_voc``. ``keep_empty``: pack images without (usable) objects too, for
    evaluation sets. The other arguments are ``packing.pack_items``'."""
    categories, images, objects = read_coco(json_path, strict)
    if not categories:
        raise _fail(json_path, "no categories")
    names = [name for _, name in categories]
    class_names = check_class_names(names if class_names is None else class_names)
    ids = dict((name, cid) for cid, name in categories)
    missing = [name for name in class_names if name not in ids]
    if missing:
        raise PackError(
            json_path, f"no category named {', '.join(map(repr, missing))}", "bad classes"
        )
    loader = CocoItemLoader(
        image_dir, json_path, class_names, check_other_classes(other_classes, strict), keep_empty
    )
    items = [(f, iid, w, h, tuple(objects[iid])) for iid, f, w, h in images]
    category_ids = [ids[name] for name in class_names]
    return pack_items(
        items, loader, out_prefix, strict, num_workers, progress, shuffle_seed, category_ids
    )
