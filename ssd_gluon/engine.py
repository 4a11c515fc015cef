"""The training step, the resumable training loop and evaluation. Horovod comes in through
``distributed.Workers``, so the same code runs alone and under ``horovodrun``; only rank 0
writes files."""
import math
import os
import signal
import sys
import time

import mxnet as mx
import numpy as np
from mxnet import autograd
from tqdm import tqdm

from .data import split_label
from .eval import VOCMApMetric
from .loss import SSDLoss
from .target import MultiBoxTargetGenerator


class TrainStep:
    """One optimisation step: forward, device-side targets, loss, backward, allreduce+update.

    The network, target generator and loss are hybridized graphs; the returned losses
    (total, cls, box), each of shape (1,), are device arrays: no host synchronization here.
    ``amp=True`` scales the loss for MXNet AMP (``amp.init()`` and ``amp.init_trainer()``
    done by the caller).
    """

    def __init__(self, net, trainer, ops="auto", amp=False):
        self.net, self.trainer, self.amp = net, trainer, amp
        self.target = MultiBoxTargetGenerator(ops=ops)
        self.loss = SSDLoss()
        for block in (self.net, self.target, self.loss):
            block.hybridize(static_alloc=True, static_shape=True)

    def __call__(self, data, objects):
        with autograd.record():
            cls_preds, box_preds, anchors = self.net(data)
            targets = self.target(anchors, objects, cls_preds)
            total, cls_loss, box_loss = self.loss(cls_preds, box_preds, *targets)
            if self.amp:
                from mxnet.contrib import amp
                with amp.scale_loss(total, self.trainer) as scaled:
                    autograd.backward(scaled)
        if not self.amp:
            total.backward()
        self.trainer.step(1)
        return total, cls_loss, box_loss


class StopSignals:
    """SIGTERM / SIGINT set a flag that the loop polls at step boundaries (it then writes a
    checkpoint and stops); a second signal aborts at once."""

    def __init__(self):
        self.signum = None

    def install(self):
        for s in (signal.SIGTERM, signal.SIGINT):
            signal.signal(s, self._handle)
        return self

    def _handle(self, signum, frame):
        if self.signum is not None:
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
            return
        self.signum = signum
        print("\nreceived %s: checkpointing at the next step boundary (send it again to abort)"
              % signal.Signals(signum).name, file=sys.stderr, flush=True)


class Interrupted(Exception):
    """The run stopped on a signal after writing ``checkpoint``."""

    def __init__(self, signum, checkpoint, epoch, iteration):
        super().__init__("stopped by %s at epoch %d iteration %d; checkpoint %s; continue "
                         "with --resume" % (signal.Signals(signum).name, epoch, iteration,
                                            checkpoint))
        self.signum = signum


class TrainLoop:
    """Epochs of ``step`` over ``make_batches(epoch)`` (a fresh, epoch-seeded iterator, so a
    resumed run reads the same batches), with the faults of a long run handled:

    - the losses (and the parameters' norm) are read back only every ``log_interval``
      iterations and at each epoch end; a NaN/inf there, on any worker, stops the run naming
      the iteration and the last good checkpoint;
    - a signal (``signals``) makes every worker stop at the same step and rank 0 write a
      checkpoint (workers agree at the next log interval; a single process at once);
    - each epoch ends with BatchNorm statistics averaged over workers, validation every
      ``val_interval`` epochs (``val_fn(epoch) -> {'mAP', ...}``, run by every worker), a
      checkpoint, and ``best.params`` when the mAP improves.

    ``info`` (model, seed, batch size, world size, ...) is stored in every checkpoint.
    ``faults`` injects failures for the tests: {'nan': step, 'kill': step, 'term': step}.
    """

    def __init__(self, net, step, make_batches, ctx, workers, checkpoints, progress, epochs,
                 iters_per_epoch, info, log_interval=20, val_fn=None, val_interval=1,
                 signals=None, faults=None):
        self.net, self.step, self.make_batches, self.ctx = net, step, make_batches, ctx
        self.workers, self.checkpoints, self.progress = workers, checkpoints, progress
        self.epochs, self.iters, self.info = epochs, iters_per_epoch, info
        self.log_interval, self.val_fn, self.val_interval = log_interval, val_fn, val_interval
        self.signals, self.faults = signals or StopSignals(), faults or {}
        self.position = dict(epoch=1, iteration=0, step=0)
        self.last_good = None          # path of the newest checkpoint known to be finite
        self.best_map = -1.0
        self._params = list(net.collect_params().values())
        self._stats = {name: p for name, p in net._collect_params_with_prefix().items()
                       if p.grad_req == "null" and not isinstance(p, mx.gluon.Constant)}

    def run(self, resume=None):
        """Train to the last epoch, from the start or from a checkpoint state ``resume``."""
        epoch, first = 1, 0
        self.progress.truncate(0 if resume is None else resume["step"])
        if resume is not None:
            epoch, first = resume["epoch"], resume["iteration"]
            self.position = dict(epoch=epoch, iteration=first, step=resume["step"])
            self.last_good, self.best_map = resume["path"], resume.get("best_mAP", -1.0)
            if first >= self.iters:
                epoch, first = epoch + 1, 0
        for e in range(epoch, self.epochs + 1):
            self._epoch(e, first if e == epoch else 0)

    def _epoch(self, epoch, first):
        mx.random.seed(self.info["seed"] + 1000 * epoch + self.workers.rank)
        batches = self.make_batches(epoch)
        for _ in range(first):                 # replay what the checkpoint already covers
            next(batches)
        self.progress.start_epoch(epoch, self.position["step"])
        for i in range(first + 1, self.iters + 1):
            losses = self._one_step(next(batches))
            self.position = dict(epoch=epoch, iteration=i, step=self.position["step"] + 1)
            self._inject_signal()
            if i % self.log_interval == 0 or i == self.iters or self._stop_now():
                self._sync_point(losses, log=i % self.log_interval == 0)
        for name, p in sorted(self._stats.items()):
            self.workers.average_(name, p.data())
        lr = self.step.trainer.learning_rate
        self.progress.end_epoch(epoch, self.position["step"], lr)
        result = self._validate(epoch)
        self._save(result)

    def _one_step(self, batch):
        data = batch.data[0].as_in_context(self.ctx)
        if self.faults.get("nan") == self.position["step"] + 1:
            data = data * float("nan")
        objects, _ = split_label(batch.label[0].as_in_context(self.ctx))
        return self.step(data, objects)

    def _inject_signal(self):
        for name, signum in (("term", signal.SIGTERM), ("kill", signal.SIGKILL)):
            if self.faults.get(name) == self.position["step"]:
                os.kill(os.getpid(), signum)

    def _stop_now(self):
        # A single process may stop at any step; workers only at agreed sync points.
        return self.workers.size == 1 and self.signals.signum is not None

    def _sync_point(self, losses, log):
        """Read the losses and the parameters' norm back, agree over workers on divergence
        (NaN/inf) and stop requests, log."""
        norm = mx.nd.add_n(*[p.data().norm() for p in self._params])
        values = [float(v.asscalar()) for v in list(losses) + [norm]]
        diverged = not all(map(math.isfinite, values))
        bad, stop = self.workers.any("sync_flags", [diverged, self.signals.signum is not None])
        pos = self.position
        if bad:
            raise FloatingPointError(
                "training diverged at epoch %d iteration %d (step %d): %s; stopped; last good "
                "checkpoint: %s" % (pos["epoch"], pos["iteration"], pos["step"],
                                    "loss %s, parameter norm %s" % (values[0], values[3])
                                    if diverged else "on another worker",
                                    self.last_good or "none"))
        if log:
            self.progress.log(pos["epoch"], pos["iteration"], pos["step"], values[:3],
                              self.step.trainer.learning_rate)
        if stop:
            signum = self.signals.signum or signal.SIGTERM
            path = self._save(None)
            raise Interrupted(signum, path, pos["epoch"], pos["iteration"])

    def _validate(self, epoch):
        if self.val_fn is None or (epoch % self.val_interval and epoch != self.epochs):
            return None
        t0 = time.time()
        result = self.val_fn(epoch)
        result["seconds"] = time.time() - t0
        self.progress.validation(epoch, self.position["step"], result)
        self.progress.start(self.position["step"])
        return result

    def _save(self, val_result):
        """Checkpoint the current position (rank 0); the last sync point found the losses and
        parameters finite. Returns the checkpoint path."""
        pos = self.position
        improved = val_result is not None and val_result["mAP"] > self.best_map
        if improved:
            self.best_map = val_result["mAP"]
        state = dict(self.info, **pos, best_mAP=self.best_map, lr=self.step.trainer.learning_rate,
                     time=time.time())
        if val_result is not None:
            state["val_mAP"] = val_result["mAP"]
        if self.workers.is_root:
            state = self.checkpoints.save(self.net, self.step.trainer, state)
            if improved:
                self.checkpoints.save_best(self.net, state)
        self.last_good = state.get("path", self.checkpoints.out_dir)
        return self.last_good


def evaluate(predictor, batches, ctx, class_names, use_07_metric=True, progress=True,
             workers=None, curves=False):
    """VOC mAP of ``predictor`` over ``batches`` (a val_iter), boxes compared in original
    image pixels. Under Horovod (``workers``) each worker passes its shard and the
    detections are gathered, so every worker returns the mAP of the whole set.
    Returns ``metric.get_dict()`` plus 'images' (and 'curves', the per-class precision/recall
    arrays, with ``curves=True``)."""
    dets, gts = [], []
    batches.reset()
    for batch in tqdm(batches, desc="eval", disable=not progress, leave=False):
        data = batch.data[0].as_in_context(ctx)
        keep = data.shape[0] - batch.pad
        objects, sizes = split_label(batch.label[0])
        ids, scores, boxes = predictor(data)
        wh = mx.nd.concat(sizes, sizes, dim=1).asnumpy()[:keep, None]          # (B, 1, 4)
        side = (data.shape[-1], data.shape[-2]) * 2
        gt = objects.asnumpy()[:keep]
        dets.append(np.concatenate([ids.asnumpy()[:keep], scores.asnumpy()[:keep],
                                    boxes.asnumpy()[:keep] * wh / side], axis=2))
        gts.append(np.concatenate([gt[:, :, :1], gt[:, :, 1:5] * wh, gt[:, :, 5:6]], axis=2))
    dets, gts = np.concatenate(dets), np.concatenate(gts)          # (n, K, 6), (n, M, 6)
    if workers is not None:
        dets, gts = workers.gather("eval_dets", dets), workers.gather("eval_gts", gts)
    metric = VOCMApMetric(iou_thresh=0.5, class_names=class_names, use_07_metric=use_07_metric)
    metric.update(dets[:, :, 2:6], dets[:, :, 0], dets[:, :, 1], gts[:, :, 1:5], gts[:, :, 0],
                  gts[:, :, 5])
    result = metric.get_dict()
    result["images"] = len(dets)
    if curves:
        result["curves"] = metric.curves()
    return result
