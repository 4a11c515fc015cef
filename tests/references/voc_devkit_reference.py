"""An independent AP reference, written from the description of the PASCAL VOC devkit's
evaluation (VOCevaldet / VOCap) with plain loops, to check ssd_gluon.evaluation.voc_map
against something other than gluoncv. Boxes are inclusive pixel coordinates (+1 in widths
and heights)."""


def overlap(det, gt):
    """IoU of two [xmin, ymin, xmax, ymax] boxes, or None when they do not intersect."""
    iw = min(det[2], gt[2]) - max(det[0], gt[0]) + 1
    ih = min(det[3], gt[3]) - max(det[1], gt[1]) + 1
    if iw <= 0 or ih <= 0:
        return None
    union = (
        (det[2] - det[0] + 1) * (det[3] - det[1] + 1)
        + (gt[2] - gt[0] + 1) * (gt[3] - gt[1] + 1)
        - iw * ih
    )
    return iw * ih / union


def class_pr(detections, ground_truth, min_overlap=0.5):
    """Precision and recall lists of one class.

    detections: list of (image, score, box); ground_truth: {image: list of (box, difficult)}.
    Returns (recall, precision) or None when the class has no non-difficult object.
    """
    npos = sum(1 for objs in ground_truth.values() for _, difficult in objs if not difficult)
    if npos == 0:
        return None
    taken = {image: [False] * len(objs) for image, objs in ground_truth.items()}
    tp, fp = [], []
    for image, _, box in sorted(detections, key=lambda d: -d[1]):
        best, best_j = -1.0, -1
        for j, (gt_box, _) in enumerate(ground_truth.get(image, [])):
            ov = overlap(box, gt_box)
            if ov is not None and ov > best:
                best, best_j = ov, j
        if best >= min_overlap:
            if ground_truth[image][best_j][1]:
                continue  # difficult: neither true nor false positive
            if not taken[image][best_j]:
                taken[image][best_j] = True
                tp.append(1), fp.append(0)
            else:
                tp.append(0), fp.append(1)  # a duplicate
        else:
            tp.append(0), fp.append(1)
    recall, precision, ctp, cfp = [], [], 0, 0
    for t, f in zip(tp, fp):
        ctp, cfp = ctp + t, cfp + f
        recall.append(ctp / npos)
        precision.append(ctp / (ctp + cfp))
    return recall, precision


# The devkit loops `for t=0:0.1:1`; MATLAB's colon operator builds the upper half of such a
# range down from its end, so t is 0.6 and 0.7 there, where numpy's arange (used by gluoncv
# and the Python ports of the devkit) gives 0.6000000000000001 and 0.7000000000000001.
MATLAB_THRESHOLDS = [k * 0.1 if k <= 5 else 1 - (10 - k) * 0.1 for k in range(11)]
NUMPY_THRESHOLDS = [k * 0.1 for k in range(11)]


def ap_11_point(recall, precision, thresholds=MATLAB_THRESHOLDS):
    """VOC2007: mean over the 11 recall thresholds t of the best precision at recall >= t."""
    total = 0.0
    for t in thresholds:
        candidates = [p for r, p in zip(recall, precision) if r >= t]
        total += max(candidates) if candidates else 0.0
    return total / 11


def ap_all_point(recall, precision):
    """VOC2010+: area under the precision envelope, summed where recall changes."""
    mrec = [0.0] + list(recall) + [1.0]
    mpre = [0.0] + list(precision) + [0.0]
    for i in range(len(mpre) - 2, -1, -1):
        mpre[i] = max(mpre[i], mpre[i + 1])
    return sum(
        (mrec[i] - mrec[i - 1]) * mpre[i] for i in range(1, len(mrec)) if mrec[i] != mrec[i - 1]
    )


def mean_ap(images, num_classes, use_07=True, min_overlap=0.5, thresholds=MATLAB_THRESHOLDS):
    """images: list of dicts with 'dets' [(cls, score, box)] and 'gts' [(cls, box, difficult)].
    Returns (per-class AP list with None for classes without objects, mean over the others)."""
    aps = []
    for c in range(num_classes):
        dets = [(i, s, b) for i, im in enumerate(images) for cls, s, b in im["dets"] if cls == c]
        gts = {i: [(b, d) for cls, b, d in im["gts"] if cls == c] for i, im in enumerate(images)}
        pr = class_pr(dets, gts, min_overlap)
        if pr is None:
            aps.append(None)
        else:
            aps.append(ap_11_point(*pr, thresholds) if use_07 else ap_all_point(*pr))
    valid = [a for a in aps if a is not None]
    return aps, sum(valid) / len(valid) if valid else float("nan")
