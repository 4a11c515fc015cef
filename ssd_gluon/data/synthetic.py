"""The embedded sample: a deterministic synthetic detection dataset in the PASCAL VOC layout,
also described as COCO instances files (``coco/instances_<split>.json``) over the same images.
Its ``JPEGImages`` and ``Annotations`` folders are, on their own, the plain-folder form
(images and VOC XML files without ``ImageSets``) that ``pack_folder`` reads.

Coloured shapes of four classes at varied scales and aspect ratios on noisy backgrounds with
clutter (lines and specks), sometimes overlapping; tiny or mostly hidden objects are flagged
``difficult``. It is sized so that the compact ``ssd_demo`` learns it in minutes on a CPU.
Nothing is downloaded: the same seed always writes the same files.
"""

import os
from xml.sax.saxutils import escape

import cv2
import numpy as np

from ..model.box_coder import box_iou
from ..utils.files import write_json
from .classes import SAMPLE_CLASSES

YEAR = "sample"  # the tree is VOCsample/, its sets "sample-train" and "sample-test"
# The COCO form's category id of each class: with gaps, as MS COCO's ids have.
SAMPLE_CATEGORY_IDS = (1, 2, 5, 9)


def _background(rng, h, w):
    """(h, w, 3) uint8: a flat random colour with mild noise, a few thin lines and specks."""
    img = np.broadcast_to(rng.uniform(30, 225, size=3), (h, w, 3)).astype(np.float64)
    img = np.clip(img + rng.normal(0, 4, size=img.shape), 0, 255).astype(np.uint8)
    for _ in range(rng.randint(0, 4)):  # clutter lines
        p0, p1 = rng.randint(0, [w, h], size=(2, 2))
        cv2.line(img, tuple(map(int, p0)), tuple(map(int, p1)), _color(rng), 1)
    for _ in range(rng.randint(0, 3)):  # small irregular specks that belong to no class
        centre = rng.uniform([0, 0], [w, h])
        pts = centre + rng.normal(0, min(h, w) * 0.015, size=(rng.randint(5, 9), 2))
        cv2.fillPoly(img, [pts.astype(np.int32)], _color(rng))
    return img


def _color(rng):
    return tuple(int(v) for v in rng.randint(0, 256, size=3))


def _contrasting_color(rng, under):
    """A random colour at least 80 (L1 over RGB) away from the mean colour it covers."""
    for _ in range(10):
        color = rng.randint(0, 256, size=3)
        if np.abs(color - under).sum() >= 80:
            break
    return color


def _shape_mask(cls, box, h, w, flip):
    """(h, w) uint8 mask of shape ``cls`` filling ``box`` (x1, y1, x2, y2)."""
    x1, y1, x2, y2 = box
    mask = np.zeros((h, w), np.uint8)
    if cls == 0:
        cv2.ellipse(mask, (((x1 + x2) / 2, (y1 + y2) / 2), (x2 - x1, y2 - y1), 0), 1, -1)
    elif cls == 1:
        cv2.rectangle(mask, (x1, y1), (x2 - 1, y2 - 1), 1, -1)
    elif cls == 2:
        tip, base = (y2 - 1, y1) if flip else (y1, y2 - 1)
        tri = np.array([((x1 + x2) // 2, tip), (x1, base), (x2 - 1, base)], np.int32)
        cv2.fillPoly(mask, [tri], 1)
    else:
        tx, ty = max(2, (x2 - x1) // 3), max(2, (y2 - y1) // 3)
        cx, cy = (x1 + x2) // 2, (y1 + y2) // 2
        cv2.rectangle(mask, (cx - tx // 2, y1), (cx + tx // 2, y2 - 1), 1, -1)
        cv2.rectangle(mask, (x1, cy - ty // 2), (x2 - 1, cy + ty // 2), 1, -1)
    return mask


def _place(rng, h, w, boxes):
    """A box (x1, y1, x2, y2) of random scale/aspect overlapping earlier ones by IoU <= 0.1."""
    for _ in range(20):
        tiny = rng.rand() < 0.06
        side = min(h, w) * (rng.uniform(0.05, 0.08) if tiny else rng.uniform(0.3, 0.6))
        aspect = np.exp(rng.uniform(np.log(2 / 3), np.log(3 / 2)))
        bw, bh = max(6, int(side * np.sqrt(aspect))), max(6, int(side / np.sqrt(aspect)))
        if bw >= w or bh >= h:
            continue
        x1, y1 = int(rng.randint(0, w - bw)), int(rng.randint(0, h - bh))
        box = (x1, y1, x1 + bw, y1 + bh)
        if not boxes or (box_iou([box], boxes) <= 0.1).all():
            return box
    return None


def make_image(rng):
    """One synthetic image. Returns (img (H, W, 3) BGR uint8, objects [(cls, box, difficult)])."""
    h, w = rng.randint(160, 257, size=2)
    img = _background(rng, h, w)
    placed = []  # (cls, box, visible mask, full area)
    for _ in range(rng.randint(1, 4)):
        box = _place(rng, h, w, [p[1] for p in placed])
        if box is None:
            continue
        cls = int(rng.randint(len(SAMPLE_CLASSES)))
        mask = _shape_mask(cls, box, h, w, flip=rng.rand() < 0.5)
        img[mask > 0] = _contrasting_color(rng, img[mask > 0].mean(axis=0))
        for earlier in placed:  # the new shape hides part of the old ones
            earlier[2][mask > 0] = 0
        placed.append((cls, box, mask, max(1, int(mask.sum()))))
    objects = []
    for cls, box, mask, area in placed:
        visible = mask.sum() / float(area)
        small = min(box[2] - box[0], box[3] - box[1]) < 14
        objects.append((cls, box, int(small or visible < 0.6)))
    return img, objects


def voc_year_dir(root, year):
    """Create ``root/VOC<year>/{JPEGImages,Annotations,ImageSets/Main}``; return the
    VOC<year> path."""
    base = os.path.join(root, "VOC" + year)
    for sub in ("JPEGImages", "Annotations", os.path.join("ImageSets", "Main")):
        os.makedirs(os.path.join(base, sub), exist_ok=True)
    return base


def _xml(folder, name, w, h, objects, class_names):
    parts = [
        "<annotation><folder>%s</folder><filename>%s.jpg</filename>" % (folder, name),
        "<size><width>%d</width><height>%d</height><depth>3</depth></size>" % (w, h),
    ]
    for cls, (x1, y1, x2, y2), difficult in objects:
        # VOC boxes are 1-based inclusive pixel indices.
        parts.append(
            "<object><name>%s</name><difficult>%d</difficult><bndbox><xmin>%d</xmin>"
            "<ymin>%d</ymin><xmax>%d</xmax><ymax>%d</ymax></bndbox></object>"
            % (escape(class_names[cls]), difficult, x1 + 1, y1 + 1, x2, y2)
        )
    parts.append("</annotation>\n")
    return "\n".join(parts)


def write_voc_item(base, name, img, objects, class_names, quality=95):
    """``base/JPEGImages/<name>.jpg`` and its annotation; ``objects``: (class index,
    (x1, y1, x2, y2) 0-based pixels with exclusive x2/y2, difficult)."""
    cv2.imwrite(
        os.path.join(base, "JPEGImages", name + ".jpg"), img, [cv2.IMWRITE_JPEG_QUALITY, quality]
    )
    with open(os.path.join(base, "Annotations", name + ".xml"), "w") as f:
        f.write(
            _xml(os.path.basename(base), name, img.shape[1], img.shape[0], objects, class_names)
        )


def write_image_set(base, split, names):
    """``base/ImageSets/Main/<split>.txt`` listing ``names``."""
    with open(os.path.join(base, "ImageSets", "Main", split + ".txt"), "w") as f:
        f.write("\n".join(names) + "\n")


def coco_instances(items, class_names, category_ids):
    """A COCO instances dict for ``items`` ``[(image id, file name, width, height, objects)]``
    (objects as ``write_voc_item`` takes them): boxes ``[x, y, w, h]`` in COCO's continuous
    pixels (a VOC box of 1-based pixels x1+1..x2 covers [x1, x2)); ``difficult`` objects
    become ``iscrowd`` regions, which the COCO metric ignores as the VOC metric ignores
    difficult ones."""
    images, annotations = [], []
    for image_id, file_name, w, h, objects in items:
        images.append(dict(id=image_id, file_name=file_name, width=w, height=h))
        for cls, (x1, y1, x2, y2), difficult in objects:
            annotations.append(
                dict(
                    id=len(annotations) + 1,
                    image_id=image_id,
                    category_id=category_ids[cls],
                    bbox=[x1, y1, x2 - x1, y2 - y1],
                    area=(x2 - x1) * (y2 - y1),
                    iscrowd=int(difficult),
                )
            )
    categories = [dict(id=i, name=n) for i, n in zip(category_ids, class_names)]
    info = dict(description="ssd_gluon synthetic sample", version="1")
    return dict(
        info=info, licenses=[], images=images, annotations=annotations, categories=categories
    )


def generate_sample(root, num_train=2000, num_test=250, seed=0):
    """Write ``root/VOCsample/{JPEGImages,Annotations,ImageSets/Main/{train,test}.txt}`` and
    ``root/coco/instances_{train,test}.json`` (file names relative to ``JPEGImages``, image
    id = the image's number + 1).

    Returns the VOC root ``root``; sets are named ``sample-train`` and ``sample-test``.
    """
    base = voc_year_dir(root, YEAR)
    splits = {"train": range(num_train), "test": range(num_train, num_train + num_test)}
    os.makedirs(os.path.join(root, "coco"), exist_ok=True)
    for split, indices in splits.items():
        names, items = [], []
        for i in indices:
            name = "%06d" % i
            img, objects = make_image(np.random.RandomState(seed * 1000003 + i))
            write_voc_item(base, name, img, objects, SAMPLE_CLASSES)
            names.append(name)
            items.append((i + 1, name + ".jpg", img.shape[1], img.shape[0], objects))
        write_image_set(base, split, names)
        instances = coco_instances(items, SAMPLE_CLASSES, SAMPLE_CATEGORY_IDS)
        write_json(os.path.join(root, "coco", "instances_%s.json" % split), instances)
    return root
