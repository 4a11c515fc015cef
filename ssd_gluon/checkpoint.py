"""Loading a trained detector for evaluation, export and detection, and the training
checkpoints that make a run resumable."""
import json
import os

import mxnet as mx

from . import model_zoo
from .files import atomic_save, write_json


def load_detector(model, params, classes=None, ops="auto", gluoncv=False, ctx=None):
    """Build preset ``model`` and load ``params`` (ours, or gluoncv's with ``gluoncv=True``).

    Errors name the file: missing, not a parameter file, or written for another model or
    class count.
    """
    net = model_zoo.get_model(model, classes=classes, ops=ops)
    if gluoncv:
        model_zoo.load_gluoncv_parameters(net, params)
    else:
        model_zoo.load_parameters(net, params)
    if ctx is not None and ctx != mx.cpu():
        net.collect_params().reset_ctx(ctx)
    return net


# Training checkpoints: ckpt-<step>.params (network), .states (trainer: optimizer states and
# the optimizer itself, whose lr schedule knows its position) and .json (where the run is:
# epoch, iteration, step, seeds). The .json is written last: a checkpoint exists once its
# .json does, so a run killed while saving leaves the previous one intact.
PREFIX = "ckpt-"


def _name(step):
    return "%s%09d" % (PREFIX, step)


class Checkpoints:
    """The checkpoints of one run directory; the last ``keep`` are kept, plus ``best``."""

    def __init__(self, out_dir, keep=3):
        self.out_dir, self.keep = out_dir, max(1, keep)

    def complete(self):
        """Paths (without suffix) of complete checkpoints, oldest first."""
        if not os.path.isdir(self.out_dir):
            return []
        names = sorted(f[:-5] for f in os.listdir(self.out_dir)
                       if f.startswith(PREFIX) and f.endswith(".json"))
        paths = [os.path.join(self.out_dir, n) for n in names]
        return [p for p in paths if all(os.path.isfile(p + s) for s in (".params", ".states"))]

    def latest(self):
        """The newest checkpoint's state (see ``save``), or None."""
        paths = self.complete()
        return read_state(paths[-1] + ".json") if paths else None

    def save(self, net, trainer, state):
        """Write ckpt-<state['step']>.{params,states,json} atomically and prune old ones.
        Returns the state with 'path' (the .json) added."""
        base = os.path.join(self.out_dir, _name(state["step"]))
        atomic_save(net.save_parameters, base + ".params")
        atomic_save(trainer.save_states, base + ".states")
        state = dict(state, path=base + ".json")
        write_json(base + ".json", state)
        self._prune()
        return state

    def save_best(self, net, state):
        """``best.params`` + ``best.json`` (the state, with the validation result)."""
        atomic_save(net.save_parameters, os.path.join(self.out_dir, "best.params"))
        write_json(os.path.join(self.out_dir, "best.json"), state)

    def _prune(self):
        for base in self.complete()[:-self.keep]:
            for suffix in (".json", ".params", ".states"):     # .json first: stays consistent
                if os.path.exists(base + suffix):
                    os.remove(base + suffix)


def read_state(path):
    """A checkpoint's state from its .json (or .params / .states / prefix) path."""
    base = path
    for suffix in (".json", ".params", ".states"):
        if base.endswith(suffix):
            base = base[:-len(suffix)]
    if not os.path.isfile(base + ".json"):
        raise FileNotFoundError("%s.json: checkpoint not found" % base)
    try:
        with open(base + ".json") as f:
            state = json.load(f)
    except ValueError as err:
        raise ValueError("%s.json: not a checkpoint file (%s)" % (base, err)) from None
    for suffix in (".params", ".states"):
        if not os.path.isfile(base + suffix):
            raise FileNotFoundError("%s%s: checkpoint file missing" % (base, suffix))
    return dict(state, path=base + ".json")


def restore(net, trainer, state):
    """Load a checkpoint's network parameters and trainer states."""
    base = state["path"][:-len(".json")]
    model_zoo.load_parameters(net, base + ".params")
    trainer.load_states(base + ".states")
