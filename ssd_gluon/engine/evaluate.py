"""VOC mAP of a detector over a validation iterator, alone or gathered over Horovod workers."""

import mxnet as mx
import numpy as np
from tqdm import tqdm

from ..data.records import split_label
from ..evaluation.voc_map import VOCMApMetric


def evaluate(
    predictor,
    batches,
    ctx,
    class_names,
    use_07_metric=True,
    progress=True,
    workers=None,
    curves=False,
):
    """VOC mAP of ``predictor`` over ``batches`` (a ``val_iter``), boxes compared in original
    image pixels. ``predictor`` takes the batches' images as they come (normalized, or pixels
    with ``val_iter(normalize=False)``) and returns ``(ids, scores, boxes)`` in input pixels.
    Under Horovod (``workers``) each worker passes its shard and the detections are gathered,
    so every worker returns the mAP of the whole set. Returns ``metric.get_dict()`` plus
    'images' (and 'curves', the per-class precision/recall arrays, with ``curves=True``)."""
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
    metric = VOCMApMetric(iou_thresh=0.5, class_names=class_names, use_07_metric=use_07_metric)
    metric.update(
        dets[:, :, 2:6], dets[:, :, 0], dets[:, :, 1], gts[:, :, 1:5], gts[:, :, 0], gts[:, :, 5]
    )
    result = metric.get_dict()
    result["images"] = len(dets)
    if curves:
        result["curves"] = metric.curves()
    return result
