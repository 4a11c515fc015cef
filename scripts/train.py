"""Train an SSD preset from RecordIO files, alone or under horovodrun.

    python scripts/train.py --model ssd_demo --train data/sample/train.rec --val data/sample/test.rec --out runs/demo
    horovodrun -np 4 python scripts/train.py --model ssd_300_vgg16_atrous_voc \\
        --train data/voc/train.rec --val data/voc/test.rec --pretrained-base gluoncv --out runs/ssd300

Unset options take the preset's reference recipe (ssd_gluon.recipe). The run directory
gets config.json, metrics.jsonl, curves.png, ckpt-<step>.{params,states,json} (the last
--keep), best.params and final.params. SIGTERM / Ctrl-C write a checkpoint and stop;
--resume continues from the newest checkpoint.
"""
import argparse
import os

import mxnet as mx

from ssd_gluon import cli, data, engine, files, model_zoo, recipe, visualize
from ssd_gluon.checkpoint import Checkpoints, read_state, restore
from ssd_gluon.distributed import Workers, is_shutdown_error
from ssd_gluon.predictor import SSDPredictor
from ssd_gluon.progress import Progress

def get_args_parser():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, help="one of: " + ", ".join(model_zoo.list_models()))
    p.add_argument("--train", required=True, help="training PREFIX.rec")
    p.add_argument("--val", help="validation PREFIX.rec (VOC07 mAP, every worker its shard)")
    p.add_argument("--out", required=True, help="run directory")
    r = p.add_argument_group("recipe (default: the preset's, see ssd_gluon/recipe.py)")
    r.add_argument("--epochs", type=int)
    r.add_argument("--batch-size", type=int, help="images per worker")
    r.add_argument("--lr", type=float, help="learning rate for a global batch of 32 images; "
                   "the run uses lr x (batch size x workers) / 32")
    r.add_argument("--optimizer", choices=["sgd", "adam"])
    r.add_argument("--momentum", type=float, help="sgd only")
    r.add_argument("--wd", type=float)
    r.add_argument("--warmup-epochs", type=float, help="linear warm-up from lr/100")
    r.add_argument("--lr-steps", help="comma-separated fractions of training where the lr drops x0.1")
    r.add_argument("--augment", choices=sorted(data.AUGMENTATIONS))
    r.add_argument("--val-interval", type=int, help="validate every N epochs (and at the end)")
    p.add_argument("--pretrained-base", default=None,
                   help="ImageNet VGG16-atrous .params, or 'gluoncv' to fetch gluoncv's")
    p.add_argument("--from-scratch", action="store_true",
                   help="train a VOC preset without an ImageNet base (far below the paper)")
    p.add_argument("--amp", action="store_true", help="mixed precision (MXNet AMP; GPU only)")
    p.add_argument("--data-shape", type=int, default=None, help="input side (default: the model's)")
    p.add_argument("--ops", default="auto", choices=["auto", "custom", "builtin"])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=4, help="decode/augment threads per worker")
    p.add_argument("--log-interval", type=int, default=20, help="iterations between progress lines")
    p.add_argument("--val-batch-size", type=int, default=16)
    p.add_argument("--keep", type=int, default=3, help="checkpoints kept (plus best.params)")
    p.add_argument("--resume", nargs="?", const="auto", default=None,
                   help="continue from the newest checkpoint in --out ('auto', the default "
                        "when the flag is given alone) or from a given ckpt-*.json")
    p.add_argument("--inject", default="", help=argparse.SUPPRESS)   # test faults: nan@STEP[:RANK]
    return p


def parse_faults(spec, rank):
    """'kill@18,nan@5:1' -> {'kill': 18, 'nan': 5} (the ':1' entry only on rank 1)."""
    faults = {}
    for item in filter(None, spec.split(",")):
        kind, _, where = item.partition("@")
        step, _, only = where.partition(":")
        if not only or int(only) == rank:
            faults[kind] = int(step)
    return faults


def check_resumable(state, info):
    """A checkpoint continues only a run with the same model, batches and workers."""
    for key in ("model", "batch_size", "world_size", "iters_per_epoch"):
        if state.get(key) != info[key]:
            raise ValueError("%s: written by a run with %s=%s, this run has %s=%s; resume with "
                             "the same settings" % (state["path"], key, state.get(key), key, info[key]))


def build_net(args, classes, ctx):
    net = model_zoo.get_model(args.model, classes=classes, ops=args.ops,
                              pretrained_base=model_zoo.pretrained_base_file(args.pretrained_base)
                              if args.pretrained_base else None)
    shape = args.data_shape or net.base_size
    net.initialize(ctx=ctx)      # only what the base file did not provide
    net.collect_params().reset_ctx(ctx)
    net(mx.nd.zeros((1, 3, shape, shape), ctx=ctx))       # finish deferred initialization
    return net, shape


def make_trainer(hvd, net, rec, lr, iters):
    opt = dict(learning_rate=lr, wd=rec.wd, lr_scheduler=recipe.lr_scheduler(
        lr, iters, rec.epochs, rec.warmup_epochs, rec.lr_steps))
    if rec.optimizer == "sgd":
        opt["momentum"] = rec.momentum
    return hvd.DistributedTrainer(net.collect_params(), rec.optimizer, opt)


def setup_device(args, workers):
    """The rank's device; MXNet AMP switched on for --amp (GPU only)."""
    ctx = workers.context()
    if args.amp and ctx == mx.cpu():
        raise ValueError("--amp needs a GPU (MXNet AMP computes in float16 on CUDA); on the "
                         "CPU training runs in float32")
    if args.amp:
        from mxnet.contrib import amp
        amp.init()                  # before the network is built: it patches the operators
    return ctx


def train(args):
    """Build, train (or resume) and save; returns the trained network (every rank)."""
    import horovod.mxnet as hvd
    hvd.init()
    workers = Workers(hvd)
    rec = recipe.resolve(args.model, {f: getattr(args, f) for f in recipe.FIELDS},
                         bool(args.pretrained_base), args.from_scratch)
    ctx = setup_device(args, workers)
    mx.random.seed(args.seed)                     # same initial weights on every worker
    train_rec = data.check_rec(args.train)
    net, shape = build_net(args, data.read_classes(train_rec), ctx)
    # Ranks must agree on the step count: the smallest shard's full batches (at least one).
    iters = max(1, min(data.shard_sizes(train_rec, workers.size)) // rec.batch_size)
    lr = recipe.effective_lr(rec.lr, rec.batch_size, workers.size)
    trainer = make_trainer(hvd, net, rec, lr, iters)
    if args.amp:
        from mxnet.contrib import amp
        amp.init_trainer(trainer)
    info = dict(model=args.model, train=train_rec, seed=args.seed, world_size=workers.size,
                batch_size=rec.batch_size, iters_per_epoch=iters, epochs=rec.epochs)
    checkpoints = Checkpoints(args.out, keep=args.keep)
    state = find_resume_state(args, checkpoints, info)
    if state is not None:
        restore(net, trainer, state)
    workers.broadcast_parameters(net.collect_params())
    if workers.is_root:
        os.makedirs(args.out, exist_ok=True)
        write_config(args, rec, info, lr, shape, net, ctx, state)
    loop = engine.TrainLoop(
        net, engine.TrainStep(net, trainer, ops=args.ops, amp=args.amp),
        lambda epoch: data.train_iter(train_rec, shape, rec.batch_size, workers.rank,
                                      workers.size, args.seed + 1000 * epoch + workers.rank,
                                      rec.augment, args.threads),
        ctx, workers, checkpoints,
        Progress(args.out, rec.epochs, iters, rec.batch_size * workers.size, workers.is_root),
        rec.epochs, iters, info, args.log_interval, make_val_fn(args, net, shape, ctx, workers),
        rec.val_interval, engine.StopSignals().install(), parse_faults(args.inject, workers.rank))
    run_loop(loop, state, args.out, workers)
    if workers.is_root:
        files.atomic_save(net.save_parameters, os.path.join(args.out, "final.params"))
        print("final parameters: %s" % os.path.join(args.out, "final.params"))
    workers.finish()
    return net


def run_loop(loop, state, out_dir, workers):
    """Run the loop; a dead peer becomes one clear line; rank 0 plots the curves however
    the run ends."""
    try:
        loop.run(resume=state)
    except mx.base.MXNetError as err:
        if not is_shutdown_error(err):
            raise
        raise RuntimeError("another worker stopped (Horovod shut down) during epoch %d; this "
                           "worker stops too; continue with --resume (last checkpoint: %s)"
                           % (loop.position["epoch"], loop.last_good or "none")) from None
    finally:
        if workers.is_root:
            plot(out_dir)


def find_resume_state(args, checkpoints, info):
    if args.resume is None:
        if checkpoints.complete():
            raise ValueError("%s: holds checkpoints of an earlier run; pass --resume to continue "
                             "it, or choose another --out" % args.out)
        return None
    state = checkpoints.latest() if args.resume == "auto" else read_state(args.resume)
    if state is None:
        print("no checkpoint in %s: starting from the beginning" % args.out)
        return None
    check_resumable(state, info)
    print("resuming from %s (epoch %d, iteration %d, step %d)"
          % (state["path"], state["epoch"], state["iteration"], state["step"]))
    return state


def make_val_fn(args, net, shape, ctx, workers):
    if not args.val:
        return None
    predictor = SSDPredictor(net)
    predictor.hybridize(static_alloc=True)
    batches = data.val_iter(args.val, shape, args.val_batch_size, workers.rank, workers.size,
                            threads=args.threads)
    return lambda epoch: engine.evaluate(predictor, batches, ctx, net.classes,
                                         progress=workers.is_root, workers=workers)


def write_config(args, rec, info, lr, shape, net, ctx, state):
    """Print and save the effective configuration (config.json)."""
    total, warmup, drops = recipe.schedule_steps(info["iters_per_epoch"], rec.epochs,
                                                 rec.warmup_epochs, rec.lr_steps)
    config = dict(vars(args))
    config.update(vars(rec))
    config.update(info)
    config.update(effective_lr=lr,
                  global_batch=rec.batch_size * info["world_size"], total_iterations=total,
                  warmup_iterations=warmup, lr_drop_iterations=drops, data_shape=shape,
                  classes=list(net.classes), device=str(ctx),
                  resumed_from=state["path"] if state else None)
    config.pop("inject")
    files.write_json(os.path.join(args.out, "config.json"), config)
    num_images, _ = data.dataset_stats(info["train"])
    print("training %s on %d images, %d worker(s) x batch %d on %s; %s lr %.3g (%.3g per 32 "
          "images), %d epochs x %d iterations, warm-up %d, x0.1 at %s; augment %s"
          % (args.model, num_images, info["world_size"], rec.batch_size, ctx, rec.optimizer,
             lr, rec.lr, rec.epochs, info["iters_per_epoch"], warmup,
             "/".join(map(str, drops)), rec.augment), flush=True)


def plot(out_dir):
    """curves.png from metrics.jsonl, when there is something to plot."""
    records = files.read_jsonl(os.path.join(out_dir, "metrics.jsonl"))
    if any(r.get("type") in ("train", "val") for r in records):
        visualize.plot_training(records, os.path.join(out_dir, "curves.png"))


def main(args):
    try:
        train(args)
    except engine.Interrupted as stop:
        print("%s" % stop, flush=True)
        return 128 + stop.signum
    return 0


if __name__ == "__main__":
    cli.run(main, get_args_parser())
