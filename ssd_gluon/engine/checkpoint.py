"""The training checkpoints that make a run resumable, and the policy for resuming one."""

import json
import os

from ..model.weights import load_parameters
from ..utils.errors import MissingFileError, UserError
from ..utils.files import atomic_save, write_json

# What a checkpoint must share with the run that resumes it: the same model, batches and
# workers (the iterators, the schedule and the shards depend on them).
RESUME_KEYS = ("model", "batch_size", "world_size", "iters_per_epoch")


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
        names = sorted(
            f[:-5] for f in os.listdir(self.out_dir) if f.startswith(PREFIX) and f.endswith(".json")
        )
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

    def resume_state(self, resume, info):
        """The state a run continues from, or None for a fresh start. ``resume`` is None (a
        fresh run: refused when this directory already holds checkpoints), ``'auto'`` (the
        newest checkpoint here, None when there is none) or the path of a checkpoint. Its
        ``RESUME_KEYS`` must equal this run's ``info``."""
        if resume is None:
            if self.complete():
                raise UserError(
                    "%s: holds checkpoints of an earlier run; pass --resume to "
                    "continue it, or choose another --out" % self.out_dir
                )
            return None
        state = self.latest() if resume == "auto" else read_state(resume)
        if state is not None:
            for key in RESUME_KEYS:
                if state.get(key) != info[key]:
                    raise UserError(
                        "%s: written by a run with %s=%s, this run has %s=%s; "
                        "resume with the same settings"
                        % (state["path"], key, state.get(key), key, info[key])
                    )
        return state

    def _prune(self):
        for base in self.complete()[: -self.keep]:
            for suffix in (".json", ".params", ".states"):  # .json first: stays consistent
                if os.path.exists(base + suffix):
                    os.remove(base + suffix)


def read_state(path):
    """A checkpoint's state from its .json (or .params / .states / prefix) path."""
    base = path
    for suffix in (".json", ".params", ".states"):
        if base.endswith(suffix):
            base = base[: -len(suffix)]
    if not os.path.isfile(base + ".json"):
        raise MissingFileError("%s.json: checkpoint not found" % base)
    try:
        with open(base + ".json") as f:
            state = json.load(f)
    except ValueError as err:
        raise UserError("%s.json: not a checkpoint file (%s)" % (base, err)) from None
    for suffix in (".params", ".states"):
        if not os.path.isfile(base + suffix):
            raise MissingFileError("%s%s: checkpoint file missing" % (base, suffix))
    return dict(state, path=base + ".json")


def restore(net, trainer, state):
    """Load a checkpoint's network parameters and trainer states."""
    base = state["path"][: -len(".json")]
    load_parameters(net, base + ".params")
    trainer.load_states(base + ".states")
