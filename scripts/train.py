"""Train an SSD preset from RecordIO files, alone or under horovodrun.

    python scripts/train.py --model ssd_demo --train data/sample/train.rec --val data/sample/test.rec
    horovodrun -np 4 python scripts/train.py --model ssd_300_vgg16_atrous_voc \
        --train data/voc/train.rec --val data/voc/test.rec --pretrained-base vgg16_atrous.params
"""
import argparse
import os

# Horovod's CPU allreduce cannot read gradients that MXNet keeps in MKLDNN layout ("We can't
# generate TBlob for MKLDNN data"): multi-process runs use the default layout. Must precede
# the first mxnet import.
if int(os.environ.get("HOROVOD_SIZE", "1")) > 1:
    os.environ.setdefault("MXNET_MKLDNN_ENABLED", "0")

import mxnet as mx

from ssd_gluon import cli, data, engine, model_zoo
from ssd_gluon.predictor import SSDPredictor


def get_args_parser():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, help="one of: " + ", ".join(model_zoo.list_models()))
    p.add_argument("--train", required=True, help="training PREFIX.rec")
    p.add_argument("--val", help="validation PREFIX.rec (VOC07 mAP on rank 0)")
    p.add_argument("--epochs", type=int, default=240)
    p.add_argument("--batch-size", type=int, default=32, help="images per worker")
    p.add_argument("--lr", type=float, default=None,
                   help="learning rate of one worker (default 1e-3 per 32 images); "
                        "multiplied by the number of workers")
    p.add_argument("--optimizer", default="sgd", choices=["sgd", "adam"],
                   help="sgd with momentum is the paper's; adam trains the from-scratch demo faster")
    p.add_argument("--momentum", type=float, default=0.9, help="sgd only")
    p.add_argument("--wd", type=float, default=5e-4)
    p.add_argument("--warmup-epochs", type=float, default=0.0)
    p.add_argument("--lr-steps", default="0.6667,0.8333",
                   help="fractions of training where the lr drops x0.1")
    p.add_argument("--augment", default="paper", choices=sorted(data.AUGMENTATIONS))
    p.add_argument("--data-shape", type=int, default=None, help="input side (default: the model's)")
    p.add_argument("--ops", default="auto", choices=["auto", "custom", "builtin"])
    p.add_argument("--pretrained-base", default=None, help="ImageNet VGG16-atrous .params")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=4, help="decode/augment threads per worker")
    p.add_argument("--log-interval", type=int, default=20)
    p.add_argument("--val-interval", type=int, default=10)
    p.add_argument("--val-batch-size", type=int, default=16)
    p.add_argument("--out", required=True, help="output directory")
    return p


def train(args):
    """Build, train and save; returns the trained network (every rank)."""
    import horovod.mxnet as hvd
    hvd.init()
    rank, size = hvd.rank(), hvd.size()
    ctx = mx.gpu(hvd.local_rank()) if mx.context.num_gpus() > 0 else mx.cpu()
    mx.random.seed(args.seed + rank)
    classes = data.read_classes(data.check_rec(args.train))
    net = model_zoo.get_model(args.model, classes=classes, pretrained_base=args.pretrained_base,
                              ops=args.ops)
    shape = args.data_shape or net.base_size
    net.initialize(ctx=ctx)
    net(mx.nd.zeros((1, 3, shape, shape), ctx=ctx))       # finish deferred initialization
    params = net.collect_params()
    hvd.broadcast_parameters(params, root_rank=0)

    num_images, _ = data.dataset_stats(args.train)
    # Ranks must agree on the step count: the smallest shard's full batches (at least one).
    iters = max(1, min(data.shard_sizes(args.train, size)) // args.batch_size)
    lr = (args.lr if args.lr is not None else 1e-3 * args.batch_size / 32) * size
    steps = [float(s) for s in args.lr_steps.split(",") if s]
    sched = engine.lr_scheduler(lr, iters, args.epochs, args.warmup_epochs, steps)
    opt = dict(learning_rate=lr, wd=args.wd, lr_scheduler=sched)
    if args.optimizer == "sgd":
        opt["momentum"] = args.momentum
    trainer = hvd.DistributedTrainer(params, args.optimizer, opt)
    step = engine.TrainStep(net, trainer, ops=args.ops)
    batches = data.train_iter(args.train, shape, args.batch_size, rank, size, args.seed,
                              args.augment, args.threads)
    val_fn = None
    if args.val:
        predictor = SSDPredictor(net)
        predictor.hybridize(static_alloc=True)
        val_batches = data.val_iter(args.val, shape, args.val_batch_size, threads=args.threads)
        val_fn = lambda epoch: engine.evaluate(predictor, val_batches, ctx, net.classes)
    if rank == 0:
        os.makedirs(args.out, exist_ok=True)
        config = dict(vars(args), world_size=size, effective_lr=lr, iters_per_epoch=iters,
                      data_shape=shape, classes=list(net.classes))
        engine.write_json(os.path.join(args.out, "config.json"), config)
        print("training %s on %d images, %d worker(s), batch %d per worker, lr %.3g, %s"
              % (args.model, num_images, size, args.batch_size, lr, ctx))
    average = (lambda name, arr: hvd.allreduce_(arr, average=True, name=name)) if size > 1 else None
    engine.fit(net, step, batches, args.epochs, ctx, args.out, rank, val_fn, args.val_interval,
               args.log_interval, num_batches=iters, average_fn=average)
    if rank == 0:
        print("final parameters: %s" % os.path.join(args.out, "final.params"))
    return net


def main(args):
    train(args)
    return 0


if __name__ == "__main__":
    cli.run(main, get_args_parser())
