"""Hooks of the training loop: code that runs around every step without the loop knowing
what it does (detectron2's ``HookBase``). The loop calls ``before_step(loop)`` once the
step's batch is in ``loop.batch`` and ``after_step(loop)`` once ``loop.position`` counts the
step; a hook may replace ``loop.batch``.
"""

import os
import signal
import time

import mxnet as mx

from ..utils.errors import UserError


class Hook:
    """Base class: override what you need."""

    def before_step(self, loop):
        pass

    def after_step(self, loop):
        pass


def stall(seconds):
    """One MXNet call of about ``seconds`` (a matrix product sized from a timed small one):
    the main thread sits in C code, as in a long training step. Announced on stdout."""
    small = mx.nd.ones((500, 500))
    mx.nd.dot(small, small).wait_to_read()  # warm up
    times = []
    for _ in range(5):  # the fastest timing: a load spike only makes the stall longer
        t0 = time.perf_counter()
        mx.nd.dot(small, small).wait_to_read()
        times.append(time.perf_counter() - t0)
    ratio = seconds / max(min(times), 1e-6)
    side = int(min(8000, 500 * ratio ** (1 / 3)))  # the product's cost grows as side**3
    big = mx.nd.ones((side, side))
    print("fault: stall of about %.0f s" % seconds, flush=True)
    mx.nd.dot(big, big).wait_to_read()


class FaultInjector(Hook):
    """Failures on purpose, for the tests (and fire drills) of the loop's guarantees.

    ``spec`` (``scripts/train.py --inject``, hidden): comma-separated ``KIND@STEP[:RANK]``
    with KIND ``nan`` (the images of step STEP become NaN), ``term`` or ``kill`` (SIGTERM /
    SIGKILL to this process after step STEP), ``stall`` (before step STEP, one long MXNet
    operation of a few seconds, announced on stdout: the main thread sits in C code as in a
    long training step); ``:RANK`` limits an entry to that worker.
    """

    SIGNALS = {"term": signal.SIGTERM, "kill": signal.SIGKILL}

    def __init__(self, spec, rank=0):
        self.faults = {}
        for item in filter(None, spec.split(",")):
            kind, _, where = item.partition("@")
            step, _, only = where.partition(":")
            if kind not in ("nan", "stall") + tuple(self.SIGNALS) or not step.isdigit():
                raise UserError(
                    "--inject: bad fault %r (expected nan|stall|term|kill@STEP[:RANK])" % item
                )
            if not only or int(only) == rank:
                self.faults[kind] = int(step)

    def before_step(self, loop):
        step = loop.position["step"] + 1
        if self.faults.get("nan") == step:
            loop.batch.data[0] = loop.batch.data[0] * float("nan")
        if self.faults.get("stall") == step:
            stall(seconds=3.0)

    def after_step(self, loop):
        for kind, signum in self.SIGNALS.items():
            if self.faults.get(kind) == loop.position["step"]:
                os.kill(os.getpid(), signum)
