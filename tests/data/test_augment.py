"""The training iterator's augmentation, checked geometrically.

Each source image encodes its own coordinates (R = x, G = y in pixels, B = 255; stored as
PNG so nothing is lost), so from any augmented output the window of the source it shows,
and whether it was mirrored, can be read back by a least-squares fit. Against that window
the boxes the iterator returns must be the source objects projected and clipped, with their
own classes; kept objects must have their centers inside; crops must honour the samplers'
minimum IoU.
"""

import mxnet as mx
import numpy as np
import pytest

from ssd_gluon.data import loader, records, transforms

S = 256  # source image side (pixel values 0..255 = coordinates)
OUT = 300  # network input
TOL = 0.025  # int pixel crops vs float label projection, at the smallest crops


def coded_image():
    img = np.empty((S, S, 3), np.uint8)  # BGR, as OpenCV writes it
    img[:, :, 0] = 255
    img[:, :, 1] = np.arange(S)[:, None]
    img[:, :, 2] = np.arange(S)[None, :]
    return img


def write_records(path, object_sets):
    """One PNG record per set of objects [(class, x0, y0, x1, y1)] (normalized)."""
    rec = mx.recordio.MXIndexedRecordIO(str(path.with_suffix(".idx")), str(path), "w")
    lst = []
    for i, objects in enumerate(object_sets):
        label = [4, 6, S, S] + [v for o in objects for v in (*o, 0)]
        header = mx.recordio.IRHeader(0, np.array(label, np.float32), i, 0)
        rec.write_idx(i, mx.recordio.pack_img(header, coded_image(), quality=3, img_fmt=".png"))
        lst.append("%d\t%s\tx.png\n" % (i, "\t".join("%g" % v for v in label)))
    rec.close()
    (path.parent / (path.stem + ".lst")).write_text("".join(lst))
    return str(path)


OBJECTS = [
    [(0, 0.10, 0.15, 0.45, 0.50), (1, 0.60, 0.55, 0.90, 0.95), (2, 0.05, 0.70, 0.25, 0.92)],
    [(3, 0.30, 0.30, 0.70, 0.80)],
    [(4, 0.70, 0.05, 0.95, 0.30), (5, 0.02, 0.02, 0.20, 0.40)],
    [(6, 0.40, 0.45, 0.55, 0.60)],
]


@pytest.fixture(scope="module")
def coded_rec(tmp_path_factory):
    return write_records(tmp_path_factory.mktemp("coded") / "coded.rec", OBJECTS * 16)


def samples(rec, augment, epochs=3, shape=OUT):
    """(image RGB 0-255 (3,H,W), objects (K,6)) of every augmented sample."""
    it = loader.train_iter(rec, shape, 32, augment=augment, seed=7, threads=2)
    for _ in range(epochs):
        it.reset()
        for batch in it:
            objects, _ = records.split_label(batch.label[0])
            for img, obj in zip(transforms.denormalize(batch.data[0].asnumpy()), objects.asnumpy()):
                yield img, obj[obj[:, 0] >= 0]


def source_window(img):
    """Fit source = a * output + b per axis from the coordinate code; returns
    ((ax, bx), (ay, by)) in normalized units, or None when too little image is visible."""
    inside = img[2] > 250
    # Away from the image border, where resizing blends code with canvas.
    core = inside.copy()
    for axis in (0, 1):
        core &= np.roll(inside, 2, axis) & np.roll(inside, -2, axis)
    v, u = np.nonzero(core)
    if len(u) < 50:
        return None
    h, w = img.shape[1:]
    ax, bx = np.polyfit((u + 0.5) / w, (img[0][v, u] + 0.5) / S, 1)
    ay, by = np.polyfit((v + 0.5) / h, (img[1][v, u] + 0.5) / S, 1)
    return (ax, bx), (ay, by)


def project(obj, fit):
    """A source object's box in output coordinates (clipped), and its center."""
    (ax, bx), (ay, by) = fit
    xs = sorted([(obj[1] - bx) / ax, (obj[3] - bx) / ax])
    ys = sorted([(obj[2] - by) / ay, (obj[4] - by) / ay])
    center = ((obj[1] + obj[3]) / 2 - bx) / ax, ((obj[2] + obj[4]) / 2 - by) / ay
    return np.clip([xs[0], ys[0], xs[1], ys[1]], 0, 1), center


def window_iou(fit, obj):
    """IoU, in source coordinates, of the shown window with a source object."""
    (ax, bx), (ay, by) = fit
    x0, x1 = sorted([bx, ax + bx])
    y0, y1 = sorted([by, ay + by])
    iw = max(0.0, min(x1, obj[3]) - max(x0, obj[1]))
    ih = max(0.0, min(y1, obj[4]) - max(y0, obj[2]))
    inter = iw * ih
    return inter / ((x1 - x0) * (y1 - y0) + (obj[3] - obj[1]) * (obj[4] - obj[2]) - inter)


def source_objects(out):
    """The source image a sample came from, recognised by its class ids."""
    classes = set(out[:, 0].astype(int))
    return next(objs for objs in OBJECTS if classes <= {o[0] for o in objs})


def check_geometry(img, out):
    """Boxes inside the image, non-degenerate, equal to the projected source objects of the
    same class, exactly the objects whose centers are inside. Returns the fit."""
    assert len(out) > 0
    assert np.all(out[:, 1:5] >= 0) and np.all(out[:, 1:5] <= 1)
    assert np.all(out[:, 3] > out[:, 1]) and np.all(out[:, 4] > out[:, 2])
    fit = source_window(img)
    assert fit is not None
    by_class = {int(r[0]): r for r in out}
    for obj in source_objects(out):
        box, (cx, cy) = project(obj, fit)
        inside = 0 <= cx <= 1 and 0 <= cy <= 1
        if min(abs(cx), abs(cx - 1), abs(cy), abs(cy - 1)) < 0.02:
            continue  # center on the edge: either way
        assert (obj[0] in by_class) == inside, (obj, (cx, cy))
        if inside:
            np.testing.assert_allclose(by_class[obj[0]][1:5], box, atol=TOL)
    return fit


def test_paper_geometry_keeps_boxes_on_their_objects(coded_rec):
    mirrored = cropped = padded = 0
    for img, out in samples(coded_rec, transforms.PAPER_GEOMETRY):
        fit = check_geometry(img, out)
        (ax, bx), (ay, by) = fit
        mirrored += ax < 0
        padded += (img[2] < 130).mean() > 0.05  # canvas visible
        cropped += abs(ax) < 0.97
    n = 3 * len(OBJECTS) * 16
    # Each part of the augmentation shows up at about its rate (mirror 0.5, pad 0.5, crop 5/6).
    assert 0.35 * n < mirrored < 0.65 * n
    assert 0.2 * n < padded < 0.7 * n
    assert cropped > 0.4 * n


@pytest.mark.parametrize("min_iou, min_crops", [(0.3, 20), (0.5, 10), (0.7, 3)])
def test_crops_honour_the_minimum_iou(coded_rec, min_iou, min_crops):
    one_sampler = dict(
        transforms.PAPER_GEOMETRY,
        num_crop_sampler=1,
        rand_crop_prob=1.0,
        rand_pad_prob=0.0,
        min_crop_overlaps=(min_iou,),
        max_crop_overlaps=(1.0,),
        min_crop_scales=(0.3,),
        max_crop_scales=(1.0,),
        min_crop_aspect_ratios=(0.5,),
        max_crop_aspect_ratios=(2.0,),
        max_crop_trials=(50,),
    )
    crops = 0
    for img, out in samples(coded_rec, one_sampler, epochs=2):
        fit = check_geometry(img, out)
        (ax, _), (ay, _) = fit
        if abs(ax * ay) > 0.97:
            continue  # no crop found: whole image
        crops += 1
        assert max(window_iou(fit, o) for o in source_objects(out)) >= min_iou - 0.03
    assert crops >= min_crops


def test_paper_crops_have_iou_at_least_the_smallest_sampler(coded_rec):
    crop_only = dict(transforms.PAPER_GEOMETRY, rand_pad_prob=0.0, rand_crop_prob=1.0)
    aspects = []
    for img, out in samples(coded_rec, crop_only, epochs=2):
        fit = check_geometry(img, out)
        (ax, _), (ay, _) = fit
        if abs(ax * ay) > 0.97:
            continue
        assert max(window_iou(fit, o) for o in source_objects(out)) >= 0.1 - 0.03
        aspects.append(abs(ax / ay))
    # Crop aspect ratios cover the paper's [0.5, 2] on both sides of 1.
    assert min(aspects) < 0.8 and max(aspects) > 1.25
    assert all(0.45 < a < 2.1 for a in aspects)


@pytest.mark.parametrize("shape", [300, 512])
def test_expansion_canvas_and_scale(coded_rec, shape):
    pad_only = dict(
        transforms.PAPER_GEOMETRY, rand_crop_prob=0.0, rand_pad_prob=1.0, rand_mirror_prob=0.0
    )
    scales = []
    for img, out in samples(coded_rec, pad_only, epochs=1, shape=shape):
        assert img.shape == (3, shape, shape)
        fit = check_geometry(img, out)
        (ax, bx), (ay, by) = fit
        # The whole source is shown, on a canvas of at most 4x its side filled with 124.
        assert bx <= 0.02 and ax + bx >= 0.98 and by <= 0.02 and ay + by >= 0.98
        assert ax <= 4.05 and ay <= 4.05
        scales.append(ax)
        canvas = img[2] < 130
        if canvas.mean() > 0.05:
            np.testing.assert_allclose(img[:, canvas].mean(1), [124] * 3, atol=1.5)
    assert max(scales) > 2.5 and min(scales) < 1.5


def test_photometric_distortion_changes_pixels_not_boxes(coded_rec):
    it_plain = list(samples(coded_rec, {}, epochs=1))
    it_color = list(samples(coded_rec, transforms.PAPER_PHOTOMETRIC, epochs=1))
    changed = 0
    for (img_p, out_p), (img_c, out_c) in zip(it_plain, it_color):
        np.testing.assert_allclose(out_c, out_p, atol=1e-6)
        changed += np.abs(img_c - img_p).mean() > 2
    assert changed > len(it_plain) // 3
