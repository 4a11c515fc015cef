"""Training a preset end to end: what ``scripts/train.py`` runs, as a library function.

``train(TrainConfig(...))`` builds the network (and its ImageNet base), the recipe's
optimizer and schedule, resumes from a checkpoint when asked, runs ``TrainLoop`` alone or
under ``horovodrun`` (``Workers.from_env``), and writes ``config.json``, ``metrics.jsonl``,
``curves.png``, the checkpoints, ``best.params`` and ``final.params`` into ``out``.
"""

import dataclasses
import os
import sys
import tempfile
from typing import Optional

import mxnet as mx

from ..data.classes import parse_class_list
from ..data.loader import train_iter, val_iter
from ..data.records import check_rec, read_classes
from ..data.verify import open_records
from ..model.predictor import SSDPredictor
from ..model.weights import load_parameters_for_classes, pretrained_base_file, save_parameters
from ..model.zoo import get_model
from ..utils import visualize
from ..utils.errors import CheckFailedError, UserError
from ..utils.files import append_jsonl, output_folder, read_json, read_jsonl, write_json
from . import recipe as recipes
from .checkpoint import SCHEDULE_FLAGS, Checkpoints, changed_schedule, describe, restore
from .distributed import Workers, is_shutdown_error
from .evaluate import evaluate
from .hooks import FaultInjector
from .loop import StopSignals, TrainLoop
from .progress import Progress
from .step import TrainStep


@dataclasses.dataclass
class TrainConfig:
    """One training run. The recipe fields left None take the preset's (``recipe``); the
    command line of ``scripts/train.py`` maps one flag to each field."""

    model: str
    train: str  # training PREFIX.rec
    out: str  # run directory
    val: Optional[str] = None  # validation PREFIX.rec
    val_metric: str = "voc07"  # evaluate.METRICS
    epochs: Optional[int] = None
    batch_size: Optional[int] = None  # images per worker
    lr: Optional[float] = None  # per 32 images (recipe.REFERENCE_BATCH)
    optimizer: Optional[str] = None
    momentum: Optional[float] = None
    wd: Optional[float] = None
    warmup_epochs: Optional[float] = None
    lr_steps: Optional[str] = None  # "0.667,0.833": fractions of training
    augment: Optional[str] = None
    val_interval: Optional[int] = None
    pretrained_base: Optional[str] = None  # ImageNet .params, or "gluoncv"
    from_scratch: bool = False
    init_from: Optional[str] = None  # a detector's .params to fine-tune (new classes allowed)
    init_classes: Optional[str] = None  # its classes (default: its run's config.json)
    init_gluoncv: bool = False  # init_from is a gluoncv file of the same-named model
    amp: bool = False
    data_shape: Optional[int] = None  # input side (default: the model's)
    ops: str = "auto"
    seed: int = 0
    threads: int = 4  # decode/augment threads per worker
    strict_data: bool = False  # a bad record is an error (default: left out, with a warning)
    log_interval: int = 20
    val_batch_size: int = 16
    keep: int = 3  # checkpoints kept (plus best.params)
    resume: Optional[str] = None  # None, "auto" or a ckpt-*.json
    inject: str = ""  # faults for the tests (hooks.FaultInjector)


def setup_device(amp, workers):
    """The worker's device; MXNet AMP switched on for ``amp`` (GPU only)."""
    ctx = workers.context()
    if amp and ctx == mx.cpu():
        raise UserError(
            "--amp needs a GPU (MXNet AMP computes in float16 on CUDA); on the "
            "CPU training runs in float32"
        )
    if amp:
        from mxnet.contrib import amp as mx_amp

        mx_amp.init()  # before the network is built: it patches the operators
    return ctx


def build_net(cfg, classes, ctx):
    """The preset on ``ctx``, initialized (except what the ImageNet base provides), with its
    deferred shapes finished by one forward pass; returns (net, input side)."""
    base = pretrained_base_file(cfg.pretrained_base) if cfg.pretrained_base else None
    net = get_model(cfg.model, classes=classes, ops=cfg.ops, pretrained_base=base)
    shape = cfg.data_shape or net.base_size
    net.initialize(ctx=ctx)  # only what the base file did not provide
    net.collect_params().reset_ctx(ctx)
    net(mx.nd.zeros((1, 3, shape, shape), ctx=ctx))  # finish deferred initialization
    return net, shape


def init_from_detector(cfg, net, ctx):
    """Start from a trained detector (``cfg.init_from``) whose class list may differ from the
    training file's: the shared classes keep their head rows (``model.weights.
    load_parameters_for_classes``). Its classes: ``cfg.init_classes`` (a list or file), else
    the ``classes`` of the ``config.json`` beside it (a run of ours), else the preset's."""
    if cfg.init_classes:
        source = parse_class_list(cfg.init_classes, source="--init-classes")
    else:
        config = read_json(
            os.path.join(os.path.dirname(os.path.abspath(cfg.init_from)), "config.json")
        )
        source = (config or {}).get("classes") or get_model(cfg.model, ops="builtin").classes
    reuse = load_parameters_for_classes(net, cfg.init_from, source, cfg.init_gluoncv)
    net.collect_params().reset_ctx(ctx)
    print("initialized from %s: %s" % (cfg.init_from, reuse))


def make_trainer(workers, net, recipe, lr, iters):
    """The recipe's optimizer with its warm-up + step schedule, averaged over the workers."""
    opt = dict(
        learning_rate=lr,
        wd=recipe.wd,
        lr_scheduler=recipes.lr_scheduler(
            lr, iters, recipe.epochs, recipe.warmup_epochs, recipe.lr_steps
        ),
    )
    if recipe.optimizer == "sgd":
        opt["momentum"] = recipe.momentum
    return workers.trainer(net.collect_params(), recipe.optimizer, opt)


def train(cfg, hooks=()):
    """Build, train (or resume) and save; returns the trained network (on every worker).
    ``hooks`` (``hooks.Hook``) run around every step after the fault injector."""
    workers = Workers.from_env()
    recipe = recipes.make_recipe(
        cfg.model,
        {f: getattr(cfg, f) for f in recipes.FIELDS},
        bool(cfg.pretrained_base),
        cfg.from_scratch,
    )
    ctx = setup_device(cfg.amp, workers)
    mx.random.seed(cfg.seed)  # same initial weights on every worker
    net, shape = build_net(cfg, read_classes(check_rec(cfg.train)), ctx)
    if cfg.init_from:
        init_from_detector(cfg, net, ctx)
    check_val_classes(cfg.val, net.classes)
    records = open_records(cfg.train, len(net.classes), cfg.strict_data, workers.is_root)
    # Workers must agree on the step count: the smallest shard's full batches (at least one).
    iters = max(1, min(records.shard_sizes(workers.size)) // recipe.batch_size)
    lr = recipes.effective_lr(recipe.lr, recipe.batch_size, workers.size)
    trainer = make_trainer(workers, net, recipe, lr, iters)
    if cfg.amp:
        from mxnet.contrib import amp as mx_amp

        mx_amp.init_trainer(trainer)
    info = dict(
        model=cfg.model,
        train=records.source,
        seed=cfg.seed,
        world_size=workers.size,
        batch_size=recipe.batch_size,
        iters_per_epoch=iters,
        epochs=recipe.epochs,
        schedule={k: getattr(recipe, k) for k in SCHEDULE_FLAGS},
    )
    info["schedule"]["lr_steps"] = list(recipe.lr_steps)  # as it reads back from JSON
    checkpoints = Checkpoints(cfg.out, keep=cfg.keep)
    state = resume(workers, checkpoints, cfg.resume, info, net, trainer)
    if state is not None:
        rescheduled = changed_schedule(state, info)
        if rescheduled:  # honour the new values: a schedule built from them
            trainer.optimizer.lr_scheduler = recipes.lr_scheduler(
                lr, iters, recipe.epochs, recipe.warmup_epochs, recipe.lr_steps
            )
            print(
                "lr schedule rebuilt for %s (the checkpoint's: %s)"
                % (
                    describe(info["schedule"], rescheduled),
                    describe(state["schedule"], rescheduled),
                )
            )
    elif cfg.resume is not None:
        print("no checkpoint in %s: starting from the beginning" % cfg.out)
    workers.broadcast_parameters(net.collect_params())
    if workers.is_root:
        output_folder(cfg.out)
        removed = checkpoints.clean()
        if removed:
            print(
                "removed %d file(s) left by interrupted writes: %s"
                % (len(removed), ", ".join(removed))
            )
        write_config(cfg, recipe, info, lr, shape, net, ctx, state, records.count)
    loop = TrainLoop(
        net=net,
        step=TrainStep(net, trainer, ops=cfg.ops, amp=cfg.amp),
        make_batches=lambda epoch, seed: train_iter(
            records,
            shape,
            recipe.batch_size,
            workers.rank,
            workers.size,
            seed,
            recipe.augment,
            cfg.threads,
        ),
        ctx=ctx,
        workers=workers,
        checkpoints=checkpoints,
        progress=Progress(
            cfg.out, recipe.epochs, iters, recipe.batch_size * workers.size, workers.is_root
        ),
        epochs=recipe.epochs,
        iters_per_epoch=iters,
        info=info,
        log_interval=cfg.log_interval,
        val_fn=make_val_fn(cfg, net, shape, ctx, workers),
        val_interval=recipe.val_interval,
        signals=StopSignals().install(),
        hooks=[FaultInjector(cfg.inject, workers.rank)] + list(hooks),
    )
    run_loop(loop, state, cfg.out, workers)
    if workers.is_root:
        final = os.path.join(cfg.out, "final.params")
        save_parameters(net, final)
        print("final parameters: %s" % final)
    workers.finish()
    return net


def resume(workers, checkpoints, how, info, net, trainer):
    """The checkpoint state this run continues from (``Checkpoints.resume_state``), or None,
    restored on every worker from rank 0's files alone: rank 0 reads the checkpoint and sends
    its state and trainer states (optimizer state and schedule position) to the others; the
    parameters follow by ``broadcast_parameters``. Hosts without a shared filesystem need no
    copy of the run directory; an error on rank 0 is raised on every worker."""
    sent = None
    if workers.is_root:
        try:
            state = checkpoints.resume_state(how, info)
            if state is not None:
                restore(net, trainer, state)
                with open(state["path"][: -len(".json")] + ".states", "rb") as f:
                    sent = ("state", state, f.read())
            else:
                sent = ("state", None, None)
        except UserError as err:
            sent = ("error", type(err), str(err))
            if workers.size == 1:
                raise
    kind, first, second = workers.from_root("resume", sent)
    if kind == "error":
        raise first(second)
    state = first
    if state is None:
        return None
    print(
        "resuming from %s (epoch %d, iteration %d, step %d)"
        % (state["path"], state["epoch"], state["iteration"], state["step"])
    )
    if not workers.is_root:
        with tempfile.TemporaryDirectory(prefix="ssd_gluon-resume-") as tmp:
            path = os.path.join(tmp, "trainer.states")
            with open(path, "wb") as f:
                f.write(second)
            trainer.load_states(path)
    return state


def run_loop(loop, state, out_dir, workers):
    """Run the loop; a dead peer becomes one clear line; rank 0 plots the curves however
    the run ends."""
    try:
        loop.run(resume=state)
    except mx.base.MXNetError as err:
        if not is_shutdown_error(err):
            raise
        raise CheckFailedError(
            "another worker stopped (Horovod shut down) during epoch %d; this worker stops "
            "too; continue with --resume (last checkpoint: %s)"
            % (loop.position["epoch"], loop.last_good or "none")
        ) from None
    finally:
        if workers.is_root:
            plot(out_dir, quiet=sys.exc_info()[0] is not None)


def check_val_classes(val, classes):
    """The validation file must name the classes the network is trained on."""
    val_classes = read_classes(check_rec(val)) if val else None
    if val_classes is not None and tuple(val_classes) != tuple(classes):
        raise UserError(
            "--val %s: its classes (%s) are not the training file's (%s): pack both with "
            "the same --classes" % (val, ",".join(val_classes), ",".join(classes))
        )


def make_val_fn(cfg, net, shape, ctx, workers):
    """``val_fn(epoch)`` of the loop: ``cfg.val_metric`` (VOC07 mAP by default, or COCO AP)
    over every worker's shard of ``cfg.val``."""
    if not cfg.val:
        return None
    predictor = SSDPredictor(net)
    predictor.hybridize(static_alloc=True)
    records = open_records(cfg.val, len(net.classes), cfg.strict_data, workers.is_root)
    batches = val_iter(
        records, shape, cfg.val_batch_size, workers.rank, workers.size, threads=cfg.threads
    )
    return lambda epoch: evaluate(
        predictor,
        batches,
        ctx,
        net.classes,
        cfg.val_metric,
        progress=workers.is_root,
        workers=workers,
        image_ids=records.image_ids,
        category_ids=records.category_ids,
    )


def write_config(cfg, recipe, info, lr, shape, net, ctx, state, num_images):
    """Print and save the effective configuration (config.json); ``num_images``: the
    training images (records left out excluded)."""
    total, warmup, drops = recipes.schedule_steps(
        info["iters_per_epoch"], recipe.epochs, recipe.warmup_epochs, recipe.lr_steps
    )
    config = dataclasses.asdict(cfg)
    config.update(vars(recipe))
    config.update(info)
    config.update(
        effective_lr=lr,
        global_batch=recipe.batch_size * info["world_size"],
        total_iterations=total,
        warmup_iterations=warmup,
        lr_drop_iterations=drops,
        data_shape=shape,
        classes=list(net.classes),
        device=str(ctx),
        resumed_from=state["path"] if state else None,
    )
    config.pop("inject")
    path = os.path.join(cfg.out, "config.json")
    if state is not None:  # a resume: keep what came before
        previous = read_json(path)
        if previous is not None:
            append_jsonl(os.path.join(cfg.out, "config-history.jsonl"), previous)
    write_json(path, config)
    print(
        "training %s on %d images, %d worker(s) x batch %d on %s; %s lr %.3g (%.3g per 32 "
        "images), %d epochs x %d iterations, warm-up %d, x0.1 at %s; augment %s"
        % (
            cfg.model,
            num_images,
            info["world_size"],
            recipe.batch_size,
            ctx,
            recipe.optimizer,
            lr,
            recipe.lr,
            recipe.epochs,
            info["iters_per_epoch"],
            warmup,
            "/".join(map(str, drops)),
            recipe.augment,
        ),
        flush=True,
    )


def plot(out_dir, quiet=False):
    """curves.png from metrics.jsonl, when there is something to plot. ``quiet`` (the run is
    ending on an error): a failure to draw is a warning, so that it cannot hide that error."""
    records = read_jsonl(os.path.join(out_dir, "metrics.jsonl"))
    if not any(r.get("type") in ("train", "val") for r in records):
        return
    try:
        visualize.plot_training(records, os.path.join(out_dir, "curves.png"))
    except UserError as err:
        if not quiet:
            raise
        print("warning: %s" % err, file=sys.stderr)
