"""Train an SSD preset from RecordIO files, alone or under horovodrun.

    python scripts/train.py --model ssd_demo --train data/sample/train.rec \\
        --val data/sample/test.rec --out runs/demo
    horovodrun -np 4 python scripts/train.py --model ssd_300_vgg16_atrous_voc \\
        --train data/voc/train.rec --val data/voc/test.rec --pretrained-base gluoncv \\
        --out runs/ssd300

Unset options take the preset's reference recipe (ssd_gluon.engine.recipe). The run directory
gets config.json, metrics.jsonl, curves.png, ckpt-<step>.{params,states,json} (the last
--keep), best.params and final.params. SIGTERM / Ctrl-C write a checkpoint and stop;
--resume continues from the newest checkpoint.
"""

import argparse

from ssd_gluon import ops
from ssd_gluon.data.transforms import AUGMENTATIONS
from ssd_gluon.data.verify import STRICT_HELP
from ssd_gluon.engine.evaluate import METRICS
from ssd_gluon.engine.loop import Interrupted
from ssd_gluon.engine.train import TrainConfig, train
from ssd_gluon.model.zoo import list_models
from ssd_gluon.utils import cli

D = TrainConfig  # the defaults below are the library's


def get_args_parser():
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--model", required=True, help="one of: " + ", ".join(list_models()))
    p.add_argument("--train", required=True, help="training PREFIX.rec")
    p.add_argument("--val", help="validation PREFIX.rec (every worker evaluates its shard)")
    p.add_argument(
        "--val-metric",
        choices=METRICS,
        default=D.val_metric,
        help="VOC 11-point or all-point mAP, or COCO AP (the best checkpoint follows it)",
    )
    p.add_argument("--out", required=True, help="run directory")
    r = p.add_argument_group("recipe (default: the preset's, see ssd_gluon/engine/recipe.py)")
    r.add_argument("--epochs", type=cli.POSITIVE)
    r.add_argument("--batch-size", type=cli.POSITIVE, help="images per worker")
    r.add_argument(
        "--lr",
        type=cli.float_above(0),
        help="learning rate for a global batch of 32 images; "
        "the run uses lr x (batch size x workers) / 32",
    )
    r.add_argument("--optimizer", choices=["sgd", "adam"])
    r.add_argument("--momentum", type=cli.float_in(0, 1), help="sgd only")
    r.add_argument("--wd", type=cli.float_in(0, 1))
    r.add_argument("--warmup-epochs", type=cli.float_in(0, 1e6), help="linear warm-up from lr/100")
    r.add_argument(
        "--lr-steps", help="comma-separated fractions of training where the lr drops x0.1"
    )
    r.add_argument("--augment", choices=sorted(AUGMENTATIONS))
    r.add_argument(
        "--val-interval", type=cli.POSITIVE, help="validate every N epochs (and at the end)"
    )
    p.add_argument(
        "--pretrained-base",
        default=D.pretrained_base,
        help="ImageNet VGG16-atrous .params, or 'gluoncv' to fetch gluoncv's",
    )
    p.add_argument(
        "--init-from",
        default=D.init_from,
        help="fine-tune a trained detector's .params (a run's final.params or checkpoint); "
        "its classes shared with --train keep their weights, the others start fresh",
    )
    p.add_argument(
        "--init-classes",
        default=D.init_classes,
        help="--init-from's classes, names or a file (default: its run's config.json, "
        "else the preset's)",
    )
    p.add_argument("--init-gluoncv", action="store_true", help="--init-from was saved by gluoncv")
    p.add_argument(
        "--from-scratch",
        action="store_true",
        help="train a VOC preset without an ImageNet base (far below the paper)",
    )
    p.add_argument("--amp", action="store_true", help="mixed precision (MXNet AMP; GPU only)")
    p.add_argument(
        "--data-shape",
        type=cli.POSITIVE,
        default=D.data_shape,
        help="input side (default: the model's)",
    )
    p.add_argument("--ops", default=D.ops, choices=ops.IMPLS)
    p.add_argument("--strict-data", action="store_true", help=STRICT_HELP)
    p.add_argument("--seed", type=int, default=D.seed)
    p.add_argument(
        "--threads", type=cli.POSITIVE, default=D.threads, help="decode/augment threads per worker"
    )
    p.add_argument(
        "--log-interval",
        type=cli.POSITIVE,
        default=D.log_interval,
        help="iterations between progress lines",
    )
    p.add_argument("--val-batch-size", type=cli.POSITIVE, default=D.val_batch_size)
    p.add_argument(
        "--keep", type=cli.POSITIVE, default=D.keep, help="checkpoints kept (plus best.params)"
    )
    p.add_argument(
        "--resume",
        nargs="?",
        const="auto",
        default=D.resume,
        help="continue from the newest checkpoint in --out ('auto', the default "
        "when the flag is given alone) or from a given ckpt-*.json",
    )
    # Test faults (ssd_gluon.engine.hooks.FaultInjector): nan|term|kill@STEP[:RANK],...
    p.add_argument("--inject", default=D.inject, help=argparse.SUPPRESS)
    return p


def main(args):
    try:
        train(TrainConfig(**vars(args)))
    except Interrupted as stop:
        print("%s" % stop, flush=True)
        return 128 + stop.signum
    return 0


if __name__ == "__main__":
    cli.run(main, get_args_parser())
