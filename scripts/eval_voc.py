"""VOC07 11-point mAP (or VOC2010+ all-point) of a trained SSD on a packed test set.

    python scripts/eval_voc.py --model ssd_demo --params runs/demo/train/final.params \
        --rec data/sample/test.rec --out runs/demo/eval.json
"""
import argparse
import os
import time

import mxnet as mx

from ssd_gluon import cli, data, engine
from ssd_gluon.checkpoint import load_detector
from ssd_gluon.predictor import SSDPredictor


def get_args_parser():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True)
    p.add_argument("--params", required=True, help="our .params, or gluoncv's with --gluoncv")
    p.add_argument("--gluoncv", action="store_true", help="--params was saved by gluoncv")
    p.add_argument("--rec", required=True, help="test PREFIX.rec")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--data-shape", type=int, default=None)
    p.add_argument("--ops", default="auto", choices=["auto", "custom", "builtin"])
    p.add_argument("--metric", default="voc07", choices=["voc07", "voc2010"],
                   help="11-point (VOC2007) or all-point (VOC2010+) AP")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", default=None, help="JSON file for the results")
    return p


def main(args):
    ctx = mx.gpu(0) if mx.context.num_gpus() > 0 else mx.cpu()
    rec = data.check_rec(args.rec)
    net = load_detector(args.model, args.params, data.read_classes(rec), args.ops, args.gluoncv, ctx)
    shape = args.data_shape or net.base_size
    predictor = SSDPredictor(net)
    predictor.hybridize(static_alloc=True)
    batches = data.val_iter(rec, shape, args.batch_size, threads=args.threads)
    t0 = time.time()
    result = engine.evaluate(predictor, batches, ctx, net.classes,
                             use_07_metric=args.metric == "voc07")
    result.update(seconds=time.time() - t0, metric=args.metric, model=args.model,
                  params=os.path.abspath(args.params), rec=rec)
    width = max(len(c) for c in net.classes)
    for name, ap in result["per_class"].items():
        print("%-*s  %.4f" % (width, name, ap))
    print("%-*s  %.4f  (%s, %d images, %.1f img/s including data)" % (
        width, "mAP", result["mAP"], args.metric, result["images"],
        result["images"] / result["seconds"]))
    if args.out:
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        engine.write_json(args.out, result)
    return 0


if __name__ == "__main__":
    cli.run(main, get_args_parser())
