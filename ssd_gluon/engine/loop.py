"""The resumable training loop. Horovod comes in through ``distributed.Workers``, so the same
code runs alone and under ``horovodrun``; only rank 0 writes files."""

import math
import os
import signal
import sys
import time

import mxnet as mx

from ..data.records import split_label, trainable
from ..model.weights import structured_params
from ..utils.errors import CheckFailedError, DivergedError, UserError


def epoch_seed(seed, epoch, rank):
    """Seed of one worker's epoch: the MXNet RNG and the data iterator of that epoch start
    from it, so a resumed run draws what the uninterrupted run drew."""
    return seed + 1000 * epoch + rank


class StopSignals:
    """SIGTERM / SIGINT set a flag that the loop polls at step boundaries (it then writes a
    checkpoint and stops); a second signal aborts at once.

    Python runs a handler once for signals that arrive while the interpreter is busy in C
    code (an MXNet operator): two Ctrl-C a few milliseconds apart would read as one. The C
    level writes one byte per delivery to the wakeup fd, so the handler counts the bytes
    waiting in that pipe to see every signal received."""

    def __init__(self):
        self.signum = None
        self._deliveries = None  # read end of the wakeup pipe

    def install(self):
        read, write = os.pipe()
        os.set_blocking(read, False)
        os.set_blocking(write, False)
        signal.set_wakeup_fd(write, warn_on_full_buffer=False)
        self._deliveries = read
        for s in (signal.SIGTERM, signal.SIGINT):
            signal.signal(s, self._handle)
        return self

    def _received(self):
        """Signals delivered since the last call (at least the one being handled)."""
        count = 0
        while self._deliveries is not None:
            try:
                count += len(os.read(self._deliveries, 64))
            except BlockingIOError:
                break
        return max(count, 1)

    def _handle(self, signum, frame):
        if self.signum is not None or self._received() > 1:
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
            return
        self.signum = signum
        print(
            "\nreceived %s: checkpointing at the next step boundary (send it again to abort)"
            % signal.Signals(signum).name,
            file=sys.stderr,
            flush=True,
        )


class Interrupted(Exception):
    """The run stopped on a signal after writing ``checkpoint``."""

    def __init__(self, signum, checkpoint, epoch, iteration):
        super().__init__(
            "stopped by %s at epoch %d iteration %d; checkpoint %s; continue "
            "with --resume" % (signal.Signals(signum).name, epoch, iteration, checkpoint)
        )
        self.signum = signum


class TrainLoop:
    """Epochs of ``step`` over ``make_batches(epoch, seed)`` (a fresh iterator seeded with
    ``epoch_seed``, so a resumed run reads the same batches), with the faults of a long run
    handled:

    - the losses (and the parameters' norm) are read back only every ``log_interval``
      iterations and at each epoch end; a NaN/inf there, on any worker, stops the run naming
      the iteration and the last good checkpoint;
    - a signal (``signals``) makes every worker stop at the next step and rank 0 write a
      checkpoint (workers agree on stop requests after every step);
    - each epoch ends with BatchNorm statistics averaged over workers, validation every
      ``val_interval`` epochs (``val_fn(epoch) -> {'mAP', ...}``, run by every worker), a
      checkpoint, and ``best.params`` when the mAP improves.

    ``info`` (model, seed, batch size, world size, ...) is stored in every checkpoint; its
    ``seed`` seeds the epochs. ``hooks`` (``hooks.Hook``) run around every step.
    """

    def __init__(
        self,
        *,
        net,
        step,
        make_batches,
        ctx,
        workers,
        checkpoints,
        progress,
        epochs,
        iters_per_epoch,
        info,
        log_interval=20,
        val_fn=None,
        val_interval=1,
        signals=None,
        hooks=(),
    ):
        self.net, self.step, self.make_batches, self.ctx = net, step, make_batches, ctx
        self.workers, self.checkpoints, self.progress = workers, checkpoints, progress
        self.epochs, self.iters, self.info = epochs, iters_per_epoch, info
        self.log_interval, self.val_fn, self.val_interval = log_interval, val_fn, val_interval
        self.signals, self.hooks = signals or StopSignals(), list(hooks)
        self.position = dict(epoch=1, iteration=0, step=0)
        self.batch = None  # the batch of the current step (hooks may replace it)
        self.last_good = None  # path of the newest checkpoint known to be finite
        self.best_map = -1.0
        self._params = list(net.collect_params().values())
        self._stats = {
            name: p
            for name, p in structured_params(net).items()
            if p.grad_req == "null" and not isinstance(p, mx.gluon.Constant)
        }

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
        seed = epoch_seed(self.info["seed"], epoch, self.workers.rank)
        mx.random.seed(seed)
        batches = self.make_batches(epoch, seed)
        for _ in range(first):  # replay what the checkpoint already covers
            next(batches)
        self.progress.start_epoch(epoch, self.position["step"])
        for i in range(first + 1, self.iters + 1):
            self.batch = next(batches)
            for hook in self.hooks:
                hook.before_step(self)
            losses = self._one_step(self.batch)
            self.position = dict(epoch=epoch, iteration=i, step=self.position["step"] + 1)
            for hook in self.hooks:
                hook.after_step(self)
            if i % self.log_interval == 0 or i == self.iters or self._stop_now():
                # Each epoch's last step logs too: its mean loss is of the logged values.
                self._sync_point(losses, log=i % self.log_interval == 0 or i == self.iters)
        for name, p in sorted(self._stats.items()):
            self.workers.average_(name, p.data())
        lr = self.step.trainer.learning_rate
        self.progress.end_epoch(epoch, self.position["step"], lr)
        result = self._validate(epoch)
        self._save(result)

    def _one_step(self, batch):
        data = batch.data[0].as_in_context(self.ctx)
        objects, _ = split_label(batch.label[0].as_in_context(self.ctx))
        objects = trainable(objects)  # crowd regions are not trained on
        return self.step(data, objects)

    def _stop_now(self):
        """Whether a stop was requested on any worker. Workers agree at every step (one tiny
        allreduce under Horovod), so that all of them checkpoint at once, well within the
        launcher's grace period (horovodrun kills its workers 5 s after a SIGTERM)."""
        requested = self.signals.signum is not None
        if self.workers.size == 1:
            return requested
        return self.workers.any("stop_request", [requested])[0]

    def _sync_point(self, losses, log):
        """Read the losses and the parameters' norm back, agree over workers on divergence
        (NaN/inf) and stop requests, log."""
        norm = mx.nd.add_n(*[p.data().norm() for p in self._params])
        values = [float(v.asscalar()) for v in list(losses) + [norm]]
        diverged = not all(map(math.isfinite, values))
        bad, stop = self.workers.any("sync_flags", [diverged, self.signals.signum is not None])
        pos = self.position
        if bad:
            raise DivergedError(
                "training diverged at epoch %d iteration %d (step %d): %s; stopped; last good "
                "checkpoint: %s"
                % (
                    pos["epoch"],
                    pos["iteration"],
                    pos["step"],
                    "loss %s, parameter norm %s" % (values[0], values[3])
                    if diverged
                    else "on another worker",
                    self.last_good or "none",
                )
            )
        if log:
            self.progress.log(
                pos["epoch"],
                pos["iteration"],
                pos["step"],
                values[:3],
                self.step.trainer.learning_rate,
            )
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
        state = dict(
            self.info,
            **pos,
            best_mAP=self.best_map,
            lr=self.step.trainer.learning_rate,
            time=time.time(),
        )
        if val_result is not None:
            state["val_mAP"] = val_result["mAP"]
        failure = None
        if self.workers.is_root:
            try:
                state = self.checkpoints.save(self.net, self.step.trainer, state)
                if improved:
                    self.checkpoints.save_best(self.net, state)
            except UserError as err:  # tell the other workers before stopping
                failure = err
        path = self.checkpoints.path(pos["step"])
        if self.workers.size > 1 and self.workers.any("checkpoint_failed", [failure])[0]:
            failure = failure or CheckFailedError(
                "worker 0 could not write the checkpoint %s; last good checkpoint: %s"
                % (path, self.last_good or "none")
            )
        if failure is not None:
            raise failure
        self.last_good = path
        return path
