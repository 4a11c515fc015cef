"""Training and evaluation loops. Horovod (``hvd``) is passed in so the same code runs alone
(``hvd.size() == 1``) and under ``horovodrun``; only rank 0 writes files."""
import json
import math
import os
import time

import mxnet as mx
from mxnet import autograd
from tqdm import tqdm

from .data import split_label
from .loss import SSDLoss
from .eval import VOCMApMetric
from .target import MultiBoxTargetGenerator


class TrainStep:
    """One optimisation step: forward, device-side targets, loss, backward, allreduce+update.

    The network, target generator and loss are hybridized graphs; the returned losses are
    device arrays (no host synchronization here).
    """

    def __init__(self, net, trainer, ops="auto"):
        self.net, self.trainer = net, trainer
        self.target = MultiBoxTargetGenerator(ops=ops)
        self.loss = SSDLoss()
        for block in (self.net, self.target, self.loss):
            block.hybridize(static_alloc=True, static_shape=True)

    def __call__(self, data, objects):
        with autograd.record():
            cls_preds, box_preds, anchors = self.net(data)
            targets = self.target(anchors, objects, cls_preds)
            total, cls_loss, box_loss = self.loss(cls_preds, box_preds, *targets)
        total.backward()
        self.trainer.step(1)
        return total, cls_loss, box_loss


def lr_scheduler(base_lr, iters_per_epoch, epochs, warmup_epochs=0.0, steps=(2 / 3, 5 / 6)):
    """Step schedule of the paper (x0.1 at the given fractions of training) with linear warm-up."""
    total = max(1, int(iters_per_epoch * epochs))
    step_iters = sorted({max(1, int(total * f)) for f in steps})
    warmup = int(iters_per_epoch * warmup_epochs)
    return mx.lr_scheduler.MultiFactorScheduler(
        step=step_iters, factor=0.1, base_lr=base_lr, warmup_steps=warmup,
        warmup_begin_lr=base_lr * 0.01 if warmup else base_lr, warmup_mode="linear")


def atomic_save(save_fn, path):
    """Write through ``save_fn(tmp_path)`` then rename, so readers never see a partial file."""
    tmp = "%s.tmp-%d" % (path, os.getpid())
    try:
        save_fn(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def train_epoch(step, batches, ctx, epoch, log_interval=20, rank=0, num_batches=None):
    """Run one epoch; returns {'images', 'seconds', 'loss', 'cls_loss', 'box_loss'} (means over
    the logged iterations, read back only at ``log_interval``)."""
    batches.reset()
    sums, count, images, t0 = [0.0, 0.0, 0.0], 0, 0, time.time()
    bar = tqdm(total=num_batches, desc="epoch %d" % epoch, disable=rank != 0, leave=False,
               dynamic_ncols=True)
    for i, batch in enumerate(batches):
        if num_batches is not None and i >= num_batches:
            break                     # every rank runs the same number of steps
        data = batch.data[0].as_in_context(ctx)
        objects, _ = split_label(batch.label[0].as_in_context(ctx))
        losses = step(data, objects)
        images += data.shape[0]
        bar.update(1)
        if (i + 1) % log_interval == 0:
            values = [float(v.asscalar()) for v in losses]
            if not all(math.isfinite(v) for v in values):
                raise FloatingPointError("loss became %s at epoch %d iteration %d"
                                         % (values[0], epoch, i + 1))
            sums = [s + v for s, v in zip(sums, values)]
            count += 1
            bar.set_postfix(loss="%.3f" % values[0], cls="%.3f" % values[1],
                            box="%.3f" % values[2], lr="%.2g" % step.trainer.learning_rate)
    mx.nd.waitall()
    bar.close()
    means = [s / max(1, count) for s in sums]
    return dict(images=images, seconds=time.time() - t0, loss=means[0], cls_loss=means[1],
                box_loss=means[2])


def evaluate(predictor, batches, ctx, class_names, use_07_metric=True, progress=True):
    """VOC mAP of ``predictor`` over ``batches`` (a val_iter). Boxes are compared in the
    original image pixels. Returns ``metric.get_dict()`` plus 'images'."""
    metric = VOCMApMetric(iou_thresh=0.5, class_names=class_names, use_07_metric=use_07_metric)
    batches.reset()
    images = 0
    for batch in tqdm(batches, desc="eval", disable=not progress, leave=False):
        data = batch.data[0].as_in_context(ctx)
        keep = data.shape[0] - batch.pad
        objects, sizes = split_label(batch.label[0])
        ids, scores, boxes = predictor(data)
        # Both sides in original-image pixels (0-based; IoU does not depend on the origin).
        wh = mx.nd.concat(sizes, sizes, dim=1).asnumpy()[:keep, None]          # (B, 1, 4)
        side = (data.shape[-1], data.shape[-2]) * 2
        gt = objects.asnumpy()[:keep]
        metric.update(boxes.asnumpy()[:keep] * wh / side, ids.asnumpy()[:keep],
                      scores.asnumpy()[:keep], gt[:, :, 1:5] * wh, gt[:, :, 0], gt[:, :, 5])
        images += keep
    result = metric.get_dict()
    result["images"] = images
    return result


def write_json(path, obj):
    """JSON written atomically."""
    def save(tmp):
        with open(tmp, "w") as f:
            json.dump(obj, f, indent=2)
    atomic_save(save, path)


def _prune(out_dir, keep):
    ckpts = sorted(f for f in os.listdir(out_dir) if f.startswith("epoch-") and f.endswith(".params"))
    for name in ckpts[:-keep] if keep > 0 else []:
        for suffix in (".params", ".states"):
            path = os.path.join(out_dir, name[:-len(".params")] + suffix)
            if os.path.exists(path):
                os.remove(path)


def fit(net, step, train_batches, epochs, ctx, out_dir, rank=0, val_fn=None, val_interval=1,
        log_interval=20, keep_checkpoints=3, num_batches=None, average_fn=None, log=print):
    """Epoch loop: train, validate every ``val_interval`` epochs with ``val_fn(epoch) -> dict``
    (rank 0), checkpoint each epoch (rank 0), and write ``final.params`` and ``log.jsonl``.

    ``average_fn(name, array)`` (Horovod's in-place allreduce) averages the statistics that
    are not trained (BatchNorm running mean/var, local to each rank) at the end of each epoch,
    so every rank, and the checkpoint, hold the same values. Returns the per-epoch records.
    """
    history = []
    stats_params = {name: p for name, p in net._collect_params_with_prefix().items()
                    if p.grad_req == "null" and not isinstance(p, mx.gluon.Constant)}
    for epoch in range(1, epochs + 1):
        stats = train_epoch(step, train_batches, ctx, epoch, log_interval, rank, num_batches)
        if average_fn is not None:
            for name, p in sorted(stats_params.items()):
                average_fn(name, p.data())
        stats.update(epoch=epoch, lr=step.trainer.learning_rate,
                     images_per_sec=stats["images"] / max(stats["seconds"], 1e-9))
        if val_fn is not None and rank == 0 and (epoch % val_interval == 0 or epoch == epochs):
            stats["val_mAP"] = val_fn(epoch)["mAP"]
        history.append(stats)
        if rank == 0:
            log("epoch %d/%d  %.1f img/s  loss %.3f (cls %.3f box %.3f)  lr %.3g%s" % (
                epoch, epochs, stats["images_per_sec"], stats["loss"], stats["cls_loss"],
                stats["box_loss"], stats["lr"],
                "  val mAP %.4f" % stats["val_mAP"] if "val_mAP" in stats else ""))
            base = os.path.join(out_dir, "epoch-%04d" % epoch)
            atomic_save(net.save_parameters, base + ".params")
            atomic_save(step.trainer.save_states, base + ".states")
            _prune(out_dir, keep_checkpoints)
            with open(os.path.join(out_dir, "log.jsonl"), "a") as f:
                f.write(json.dumps(stats) + "\n")
    if rank == 0:
        atomic_save(net.save_parameters, os.path.join(out_dir, "final.params"))
    return history
