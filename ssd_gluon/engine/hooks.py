"""Hooks of the training loop: code that runs around every step without the loop knowing
what it does (detectron2's ``HookBase``). The loop calls ``before_step(loop)`` once the
step's batch is in ``loop.batch`` and ``after_step(loop)`` once ``loop.position`` counts the
step; a hook may replace ``loop.batch``.
"""

import os
import signal

from ..utils.errors import UserError


class Hook:
    """Base class: override what you need."""

    def before_step(self, loop):
        pass

    def after_step(self, loop):
        pass


class FaultInjector(Hook):
    """Failures on purpose, for the tests (and fire drills) of the loop's guarantees.

    ``spec`` (``scripts/train.py --inject``, hidden): comma-separated ``KIND@STEP[:RANK]``
    with KIND ``nan`` (the images of step STEP become NaN), ``term`` or ``kill`` (SIGTERM /
    SIGKILL to this process after step STEP); ``:RANK`` limits an entry to that worker.
    """

    SIGNALS = {"term": signal.SIGTERM, "kill": signal.SIGKILL}

    def __init__(self, spec, rank=0):
        self.faults = {}
        for item in filter(None, spec.split(",")):
            kind, _, where = item.partition("@")
            step, _, only = where.partition(":")
            if kind not in ("nan",) + tuple(self.SIGNALS) or not step.isdigit():
                raise UserError(
                    "--inject: bad fault %r (expected nan|term|kill@STEP[:RANK])" % item
                )
            if not only or int(only) == rank:
                self.faults[kind] = int(step)

    def before_step(self, loop):
        if self.faults.get("nan") == loop.position["step"] + 1:
            loop.batch.data[0] = loop.batch.data[0] * float("nan")

    def after_step(self, loop):
        for kind, signum in self.SIGNALS.items():
            if self.faults.get(kind) == loop.position["step"]:
                os.kill(os.getpid(), signum)
