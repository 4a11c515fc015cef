"""Training progress for people and for tools: a periodic line on rank 0 (epoch, iteration,
images/s, loss parts, lr, ETA) and a JSON-lines metrics file.

Records of ``metrics.jsonl`` (one JSON object per line, ``type`` first):
    train  every log interval and each epoch's last iteration: epoch, iteration, step, loss,
                               cls_loss, box_loss, lr, images_per_sec
    epoch  each epoch end:     epoch, step, loss/cls_loss/box_loss (means of the logged values),
                               images, seconds, images_per_sec, lr
    val    each validation:    epoch, step, mAP, per_class, images, seconds
"""

import os
import sys
import time

from ..utils.files import append_jsonl, read_jsonl, rewrite_jsonl


def format_duration(seconds):
    """12345 -> '3:25:45'; days spelled out for multi-day runs."""
    seconds = int(max(0, seconds))
    days, rest = divmod(seconds, 86400)
    text = "%d:%02d:%02d" % (rest // 3600, rest % 3600 // 60, rest % 60)
    return "%dd %s" % (days, text) if days else text


class Progress:
    """Prints and records progress; silent and writes nothing unless ``enabled`` (rank 0).

    ``total_steps`` (the run's iterations) and ``global_batch`` give the ETA and images/s.
    """

    def __init__(self, out_dir, epochs, iters_per_epoch, global_batch, enabled=True, stream=None):
        self.path = os.path.join(out_dir, "metrics.jsonl")
        self.epochs, self.iters = epochs, iters_per_epoch
        self.total_steps = epochs * iters_per_epoch
        self.global_batch, self.enabled = global_batch, enabled
        self.stream = stream or sys.stdout
        self._mark = None  # (time, step) of the previous line
        self._rate = None  # seconds per step, smoothed
        self._epoch = None

    def truncate(self, step):
        """Drop records after ``step`` (a resumed run redoes them)."""
        if self.enabled:
            rewrite_jsonl(self.path, [r for r in read_jsonl(self.path) if r.get("step", 0) <= step])

    def start(self, step):
        """Start timing at ``step`` (after start-up, resume replay or validation)."""
        self._mark = (time.time(), step)

    def start_epoch(self, epoch, step):
        self._epoch = dict(epoch=epoch, sums=[0.0, 0.0, 0.0], count=0, t0=time.time(), step0=step)
        self.start(step)

    def log(self, epoch, iteration, step, losses, lr):
        """One line + one 'train' record; ``losses`` = (total, cls, box) floats."""
        now = time.time()
        t_prev, s_prev = self._mark
        per_step = (now - t_prev) / max(1, step - s_prev)
        self._rate = per_step if self._rate is None else 0.7 * self._rate + 0.3 * per_step
        self._mark = (now, step)
        e = self._epoch
        e["sums"] = [a + b for a, b in zip(e["sums"], losses)]
        e["count"] += 1
        ips = self.global_batch / max(per_step, 1e-9)
        self._write(
            dict(
                type="train",
                epoch=epoch,
                iteration=iteration,
                step=step,
                loss=losses[0],
                cls_loss=losses[1],
                box_loss=losses[2],
                lr=lr,
                images_per_sec=ips,
                time=now,
            )
        )
        eta = format_duration(self._rate * (self.total_steps - step))
        self._print(
            "epoch %d/%d  iter %d/%d  %.1f img/s  loss %.4f (cls %.4f box %.4f)  "
            "lr %.3g  ETA %s"
            % (
                epoch,
                self.epochs,
                iteration,
                self.iters,
                ips,
                losses[0],
                losses[1],
                losses[2],
                lr,
                eta,
            )
        )

    def end_epoch(self, epoch, step, lr):
        """The 'epoch' record; returns it."""
        e = self._epoch
        seconds = time.time() - e["t0"]
        images = (step - e["step0"]) * self.global_batch
        means = [s / max(1, e["count"]) for s in e["sums"]]
        record = dict(
            type="epoch",
            epoch=epoch,
            step=step,
            loss=means[0],
            cls_loss=means[1],
            box_loss=means[2],
            images=images,
            seconds=seconds,
            images_per_sec=images / max(seconds, 1e-9),
            lr=lr,
        )
        self._write(record)
        self._print(
            "epoch %d/%d done in %s: %.1f img/s, mean loss %.4f"
            % (epoch, self.epochs, format_duration(seconds), record["images_per_sec"], means[0])
        )
        return record

    def validation(self, epoch, step, result):
        self._write(
            dict(
                type="val",
                epoch=epoch,
                step=step,
                mAP=result["mAP"],
                per_class=result["per_class"],
                images=result["images"],
                seconds=result.get("seconds"),
            )
        )
        self._print(
            "epoch %d/%d  validation %s %.4f on %d images"
            % (
                epoch,
                self.epochs,
                "AP" if "AP50" in result else "mAP",
                result["mAP"],
                result["images"],
            )
        )

    def _print(self, text):
        if self.enabled:
            print(text, file=self.stream, flush=True)

    def _write(self, record):
        if self.enabled:
            append_jsonl(self.path, record)
