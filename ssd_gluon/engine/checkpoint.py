"""The training checkpoints that make a run resumable, and the policy for resuming one."""

import json
import os
import pickle
import sys

import mxnet as mx

from ..model.weights import load_parameters, save_parameters
from ..utils.errors import MissingFileError, UserError
from ..utils.files import atomic_save, remove_temporaries, write_json

# What a checkpoint must share with the run that resumes it: the same model, batches and
# workers (the iterators, the schedule and the shards depend on them).
RESUME_KEYS = ("model", "batch_size", "world_size", "iters_per_epoch")
# The recipe values the optimizer state and the lr schedule in a checkpoint were built from
# (``info['schedule']``), with their flags. A resume may change those of the lr schedule
# (``changed_schedule``: the run then installs a schedule built from the new values), not
# those of the optimizer state.
SCHEDULE_FLAGS = {
    "optimizer": "--optimizer",
    "lr": "--lr",
    "momentum": "--momentum",
    "wd": "--wd",
    "epochs": "--epochs",
    "warmup_epochs": "--warmup-epochs",
    "lr_steps": "--lr-steps",
}
FIXED_ON_RESUME = ("optimizer", "momentum", "wd")


# Training checkpoints: ckpt-<step>.params (network), .states (trainer: optimizer states and
# the optimizer itself, whose lr schedule knows its position) and .json (where the run is:
# epoch, iteration, step, seeds). The .json is written last: a checkpoint exists once its
# .json does, so a run killed while saving leaves the previous one intact.
PREFIX = "ckpt-"
SUFFIXES = (".params", ".states", ".json")
DAMAGED = ".damaged"  # appended to the files of a checkpoint that does not load


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
        return [p for p in paths if all(os.path.isfile(p + s) for s in SUFFIXES)]

    def latest(self):
        """The newest checkpoint that loads (see ``save``), or None. A damaged newer one (a
        file that does not read back) is reported and skipped in favour of the one before;
        its files get ``*.damaged`` appended, so that it no longer counts among the kept
        ones."""
        for base in reversed(self.complete()):
            problem = damage(base)
            if problem is None:
                return read_state(base + ".json")
            for suffix in SUFFIXES:
                os.replace(base + suffix, base + suffix + DAMAGED)
            print(
                "warning: %s: %s; renamed *%s, trying the previous checkpoint"
                % (base + ".json", problem, DAMAGED),
                file=sys.stderr,
                flush=True,
            )
        return None

    def clean(self):
        """Remove what interrupted writes left in the run directory: temporary files, and the
        files of a checkpoint whose .json was never written. Returns the names removed."""
        removed = remove_temporaries(self.out_dir)
        if os.path.isdir(self.out_dir):
            for name in sorted(os.listdir(self.out_dir)):
                base, suffix = os.path.splitext(os.path.join(self.out_dir, name))
                if (
                    name.startswith(PREFIX)
                    and suffix in (".params", ".states")
                    and not os.path.isfile(base + ".json")
                ):
                    os.remove(base + suffix)
                    removed.append(name)
        return removed

    def path(self, step):
        """The .json path of the checkpoint of ``step`` (on every worker, written by one)."""
        return os.path.join(self.out_dir, _name(step) + ".json")

    def save(self, net, trainer, state):
        """Write ckpt-<state['step']>.{params,states,json}, each checked and renamed into
        place (the .json last), and prune old ones; a failed write removes the checkpoint's
        files and raises. Returns the state with 'path' (the .json) added."""
        base = self.path(state["step"])[: -len(".json")]
        state = dict(state, path=base + ".json")
        try:
            save_parameters(net, base + ".params")
            atomic_save(trainer.save_states, base + ".states")
            write_json(base + ".json", state)
        except BaseException:
            _remove(base)
            raise
        self._prune()
        return state

    def save_best(self, net, state):
        """``best.params`` + ``best.json`` (the state, with the validation result)."""
        save_parameters(net, os.path.join(self.out_dir, "best.params"))
        write_json(os.path.join(self.out_dir, "best.json"), state)

    def resume_state(self, resume, info):
        """The state a run continues from, or None for a fresh start. ``resume`` is None (a
        fresh run: refused when this directory already holds checkpoints), ``'auto'`` (the
        newest checkpoint here that loads, None when there is none) or the path of a
        checkpoint (an error if it is damaged). Its ``RESUME_KEYS`` must equal this run's
        ``info``. Read by one worker (``train.resume`` sends the result to the others)."""
        if resume is None:
            if self.complete():
                raise UserError(
                    "%s: holds checkpoints of an earlier run; pass --resume to "
                    "continue it, or choose another --out" % self.out_dir
                )
            return None
        if resume == "auto":
            state = self.latest()
        else:
            state = read_state(resume)
            problem = damage(state["path"][: -len(".json")])
            if problem is not None:
                raise UserError("%s: %s; resume from another checkpoint" % (resume, problem))
        if state is not None:
            for key in RESUME_KEYS:
                if state.get(key) != info[key]:
                    raise UserError(
                        "%s: written by a run with %s=%s, this run has %s=%s; "
                        "resume with the same settings"
                        % (state["path"], key, state.get(key), key, info[key])
                    )
            _check_schedule(state, info)
        return state

    def _prune(self):
        for base in self.complete()[: -self.keep]:
            _remove(base)


def _remove(base):
    """Delete the files of checkpoint ``base``, the .json first: what stays is never taken
    for a complete checkpoint."""
    for suffix in reversed(SUFFIXES):
        if os.path.exists(base + suffix):
            os.remove(base + suffix)


def changed_schedule(state, info):
    """The SCHEDULE_FLAGS fields whose values differ between a checkpoint and this run."""
    old, new = state.get("schedule") or {}, info.get("schedule") or {}
    return [k for k in SCHEDULE_FLAGS if k in old and k in new and old[k] != new[k]]


def describe(settings, fields):
    """'--lr 0.02, --epochs 3' for ``fields`` of a schedule dict."""
    return ", ".join("%s %s" % (SCHEDULE_FLAGS[k], _text(settings[k])) for k in fields)


def _check_schedule(state, info):
    """Refuse a resume that changes what the checkpoint's optimizer state was built from
    (the optimizer, its momentum and weight decay): the state cannot follow."""
    fixed = [k for k in changed_schedule(state, info) if k in FIXED_ON_RESUME]
    if fixed:
        raise UserError(
            "%s: written by a run with %s; this run has %s: the checkpoint's optimizer state "
            "belongs to the first; resume with those values, or start a new run in another "
            "--out"
            % (state["path"], describe(state["schedule"], fixed), describe(info["schedule"], fixed))
        )


def _text(value):
    return ",".join("%g" % v for v in value) if isinstance(value, (list, tuple)) else str(value)


def damage(base):
    """Why the checkpoint ``base`` (path without suffix) cannot be resumed from, or None:
    its .json must parse, its .params load and its .states unpickle."""
    try:
        with open(base + ".json") as f:
            json.load(f)
    except ValueError as err:
        return "not a checkpoint file (%s)" % err
    try:
        mx.nd.load(base + ".params")
    except mx.base.MXNetError:
        return "%s.params does not load" % os.path.basename(base)
    try:
        with open(base + ".states", "rb") as f:
            pickle.load(f)  # our own file: the trainer states gluon pickles
    except Exception as err:  # noqa: BLE001 - whatever unpickling a damaged file raises
        return "%s.states does not load (%s)" % (os.path.basename(base), type(err).__name__)
    return None


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
    """Load a checkpoint's network parameters and trainer states (one-line errors naming
    the file when one does not load)."""
    base = state["path"][: -len(".json")]
    load_parameters(net, base + ".params")
    try:
        trainer.load_states(base + ".states")
    except Exception as err:  # noqa: BLE001 - unpickling a damaged file raises anything
        raise UserError(
            "%s.states: the trainer states do not load (%s: %s)"
            % (base, type(err).__name__, str(err).splitlines()[0][:120])
        ) from None
