"""The accuracy of a detector over a validation iterator, alone or gathered over Horovod
workers: VOC mAP (``voc07`` 11-point, ``voc2010`` all-point) or COCO AP (pycocotools)."""

import mxnet as mx
import numpy as np
from tqdm import tqdm

from ..data.records import split_label
from ..evaluation.voc_map import VOCMApMetric

METRICS = ("voc07", "voc2010", "coco")


def evaluate(
    predictor,
    batches,
    ctx,
    class_names,
    metric="voc07",
    progress=True,
    workers=None,
    curves=False,
    image_ids=None,
    category_ids=None,
):
    """The ``metric`` (one of ``METRICS``) of ``predictor`` over ``batches`` (a ``val_iter``),
    boxes compared in original image pixels. ``predictor`` takes the batches' images as they
    come (normalized, or pixels with ``val_iter(normalize=False)``) and returns ``(ids,
    scores, boxes)`` in input pixels. Under Horovod (``workers``) each worker passes its shard
    and the detections are gathered (in rank order, which is file order), so every worker
    returns the figure of the whole set. Flagged objects (VOC difficult, COCO crowd) are
    ignored by both metrics. Returns the metric's ``get_dict()`` (``mAP`` always: COCO's AP
    for ``coco``) plus 'images'; with ``curves=True`` also 'curves' (VOC: per-class
    precision/recall arrays) or 'detections' (COCO: the results list, categories
    ``category_ids[class]`` and images ``image_ids[record]``, defaults ``class + 1`` and
    the record's index)."""
    if metric not in METRICS:
        raise ValueError("metric must be one of %s, not %r" % (", ".join(METRICS), metric))
    dets, gts = [], []
    batches.reset()
    for batch in tqdm(batches, desc="eval", disable=not progress, leave=False):
        data = batch.data[0].as_in_context(ctx)
        keep = data.shape[0] - batch.pad
        objects, sizes = split_label(batch.label[0])
        ids, scores, boxes = predictor(data)
        wh = mx.nd.concat(sizes, sizes, dim=1).asnumpy()[:keep, None]  # (B, 1, 4)
        side = (data.shape[-1], data.shape[-2]) * 2
        gt = objects.asnumpy()[:keep]
        dets.append(
            np.concatenate(
                [ids.asnumpy()[:keep], scores.asnumpy()[:keep], boxes.asnumpy()[:keep] * wh / side],
                axis=2,
            )
        )
        gts.append(np.concatenate([gt[:, :, :1], gt[:, :, 1:5] * wh, gt[:, :, 5:6]], axis=2))
    dets, gts = np.concatenate(dets), np.concatenate(gts)  # (n, K, 6), (n, M, 6)
    if workers is not None:
        dets, gts = workers.gather("eval_dets", dets), workers.gather("eval_gts", gts)
    flagged = gts[:, :, 5] > 0
    args = (dets[:, :, 2:6], dets[:, :, 0], dets[:, :, 1], gts[:, :, 1:5], gts[:, :, 0], flagged)
    if metric == "coco":
        from ..evaluation.coco_map import COCOMetric  # pycocotools only where it is used

        scorer = COCOMetric(class_names, category_ids)
        if image_ids is not None and any(image_ids):
            scorer.update(*args, image_ids=image_ids[: len(dets)])
        else:
            scorer.update(*args)
    else:
        scorer = VOCMApMetric(0.5, class_names, use_07_metric=metric == "voc07")
        scorer.update(*args)
    result = scorer.get_dict()
    result["images"] = len(dets)
    if curves and metric == "coco":
        result["detections"] = scorer.results()
    elif curves:
        result["curves"] = scorer.curves()
    return result
