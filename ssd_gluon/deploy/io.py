"""Images in, detections out: reading image files, resizing them to the detector's input,
and turning its output rows into per-image lists in the original image's pixels."""

import glob
import os

import cv2
import numpy as np

from ..utils.errors import MissingFileError, UserError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


def expand_images(patterns):
    """Files from paths, folders (their .jpg/.jpeg/.png) and globs, in sorted order."""
    files = []
    for pattern in patterns:
        if os.path.isdir(pattern):
            files += sorted(
                os.path.join(pattern, f)
                for f in os.listdir(pattern)
                if f.lower().endswith(IMAGE_SUFFIXES)
            )
        elif any(c in pattern for c in "*?["):
            files += sorted(glob.glob(pattern))
        else:
            files.append(pattern)
    if not files:
        raise MissingFileError("%s: no images found" % " ".join(patterns))
    return files


def output_names(files, out_dir, suffix=".png", allow_inputs_in_out=False):
    """{input path: output path} in ``out_dir``, one per input, never an input file and never
    twice the same: ``<stem>.png``, or ``<stem>_<ext>.png`` when another input has that stem
    (``one.jpg`` + ``one.png``), then ``-2``, ``-3``... (same names in other folders). An
    ``out_dir`` that holds inputs is refused unless ``allow_inputs_in_out``."""
    out_dir = os.path.abspath(out_dir)
    inputs = {os.path.abspath(f) for f in files}
    inside = sorted(f for f in inputs if os.path.dirname(f) == out_dir)
    if inside and not allow_inputs_in_out:
        raise UserError(
            "--out %s holds input images (e.g. %s): choose another folder, or pass "
            "--out-with-inputs (outputs then never replace an input)"
            % (out_dir, os.path.basename(inside[0]))
        )
    stems = {}
    for f in files:
        stems.setdefault(os.path.splitext(os.path.basename(f))[0], set()).add(os.path.abspath(f))
    taken = set(inputs)
    names = {}
    for f in files:
        stem, ext = os.path.splitext(os.path.basename(f))
        base = stem if len(stems[stem]) == 1 else "%s_%s" % (stem, ext.lstrip(".").lower())
        name, n = os.path.join(out_dir, base + suffix), 1
        while name in taken:
            n += 1
            name = os.path.join(out_dir, "%s-%d%s" % (base, n, suffix))
        taken.add(name)
        names[f] = name
    return names


def read_image(path):
    """(H, W, 3) uint8 RGB; a one-line error naming the file when it is not a readable image."""
    if not os.path.isfile(path):
        raise MissingFileError("%s: image not found" % path)
    img = cv2.imread(path, cv2.IMREAD_COLOR)
    if img is None:
        raise UserError("%s: not a readable image" % path)
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def to_input(img, size):
    """RGB image -> float32 (1, 3, size, size) pixels 0-255, the input of a deployed
    detector (``loading.load_detector``, the exported graphs)."""
    resized = cv2.resize(img, (size, size), interpolation=cv2.INTER_LINEAR)
    return resized.transpose(2, 0, 1)[None].astype(np.float32)


def detections_to_list(ids, scores, boxes, class_names, img_size, input_size, thresh):
    """One image's (K,1), (K,1), (K,4) outputs (input pixels) -> list of dicts with the class
    name, score and box in original image pixels, score >= thresh."""
    w, h = img_size
    scale = np.array([w, h, w, h], np.float32) / np.array([input_size, input_size] * 2, np.float32)
    out = []
    for cid, score, box in zip(ids.ravel(), scores.ravel(), boxes):
        if cid < 0 or score < thresh:
            continue
        out.append(
            dict(
                cls=class_names[int(cid)],
                score=round(float(score), 4),
                box=[round(float(v), 1) for v in box * scale],
            )
        )
    return out
