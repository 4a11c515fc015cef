"""PASCAL VOC mAP of a trained SSD on a packed test set: VOC07 11-point (default) or VOC2010+
all-point AP at IoU 0.5, per-class table, precision/recall plot, and the detector's speed.

    python scripts/eval_voc.py --model ssd_demo --params runs/demo/train/final.params \\
        --rec data/sample/test.rec --out runs/demo/eval.json
    python scripts/eval_voc.py --symbol runs/demo/export/ssd_demo --rec data/sample/test.rec
    horovodrun -np 4 python scripts/eval_voc.py --model ssd_300_vgg16_atrous_voc \\
        --params ssd_300_vgg16_atrous_voc.params --gluoncv --rec data/voc/test.rec

Under horovodrun every worker evaluates its shard and the detections are gathered; rank 0
prints and writes. --out writes the JSON and, beside it, OUT.pr.png.
"""
import argparse
import os
import time

import mxnet as mx

from ssd_gluon import cli, data, engine, speed, visualize
from ssd_gluon.checkpoint import load_detector
from ssd_gluon.distributed import Workers
from ssd_gluon.export import check_input_size, load_exported
from ssd_gluon.files import write_json
from ssd_gluon.predictor import SSDPredictor


def get_args_parser():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    src = p.add_argument_group("detector: --model with --params, or --symbol")
    src.add_argument("--model", help="preset name")
    src.add_argument("--params", help="our .params (checkpoint, best or final), or gluoncv's "
                     "with --gluoncv")
    src.add_argument("--gluoncv", action="store_true", help="--params was saved by gluoncv")
    src.add_argument("--symbol", help="PREFIX of files written by scripts/export_symbol.py")
    p.add_argument("--rec", required=True, help="test PREFIX.rec")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--data-shape", type=int, default=None)
    p.add_argument("--ops", default="auto", choices=["auto", "custom", "builtin"])
    p.add_argument("--metric", default="voc07", choices=["voc07", "voc2010"],
                   help="11-point (VOC2007) or all-point (VOC2010+) AP")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--speed-repeats", type=int, default=10,
                   help="timed calls per batch size for the speed figures (0: skip)")
    p.add_argument("--out", default=None, help="JSON file for the results (+ OUT.pr.png)")
    return p


def load_predictor(args, classes, ctx):
    """(predictor taking normalized (B,3,S,S) batches, class names, input side)."""
    if cli.uses_export(args):
        block, meta = load_exported(args.symbol, ctx)
        check_input_size(meta, args.symbol, args.data_shape)
        mean = mx.nd.array(data.MEAN_RGB, ctx=ctx).reshape((1, 3, 1, 1))
        std = mx.nd.array(data.STD_RGB, ctx=ctx).reshape((1, 3, 1, 1))

        def predictor(x):      # the exported graph takes pixels 0-255
            pixels = mx.nd.broadcast_add(mx.nd.broadcast_mul(x, std), mean)
            if meta["input_dtype"] == "uint8":
                pixels = pixels.round().clip(0, 255).astype("uint8")
            return block(pixels)
        return predictor, meta["classes"], meta["data_shape"]
    net = load_detector(args.model, args.params, classes, args.ops, args.gluoncv, ctx)
    predictor = SSDPredictor(net)
    predictor.hybridize(static_alloc=True)
    return predictor, list(net.classes), args.data_shape or net.base_size


def make_workers():
    """Horovod when launched by horovodrun, else a single process."""
    if int(os.environ.get("HOROVOD_SIZE", "1")) > 1:
        import horovod.mxnet as hvd
        hvd.init()
        return Workers(hvd)
    return Workers()


def print_table(result, classes):
    width = max(len(c) for c in classes + ["mAP"])
    for name, ap in result["per_class"].items():
        print("%-*s  %.4f" % (width, name, ap))
    print("%-*s  %.4f  (%s, %d images, %.1f s)" % (width, "mAP", result["mAP"], result["metric"],
                                                  result["images"], result["seconds"]))
    for key, s in result.get("speed", {}).items():
        print("speed %s: %.1f images/s (%.1f ms per batch), forward + decode + NMS"
              % (key.replace("_", " "), s["images_per_sec"], s["ms_per_batch"]))
    if "data_images_per_sec" in result:
        print("data loading alone: %.1f images/s (%d threads)" % (result["data_images_per_sec"],
                                                                 result["threads"]))


def main(args):
    workers = make_workers()
    ctx = workers.context()
    rec = data.check_rec(args.rec)
    predictor, classes, shape = load_predictor(args, data.read_classes(rec), ctx)
    batches = data.val_iter(rec, shape, args.batch_size, workers.rank, workers.size,
                            threads=args.threads)
    t0 = time.time()
    result = engine.evaluate(predictor, batches, ctx, classes, args.metric == "voc07",
                             progress=workers.is_root, workers=workers, curves=True)
    result.update(seconds=time.time() - t0, metric=args.metric, rec=rec, threads=args.threads,
                  workers=workers.size, detector=os.path.abspath(args.symbol) if args.symbol
                  else dict(model=args.model, params=os.path.abspath(args.params),
                            gluoncv=args.gluoncv))
    workers.finish()
    if not workers.is_root:
        return 0
    curves = result.pop("curves")
    if args.speed_repeats > 0:
        result["speed"] = speed.detector_speed(predictor, shape, ctx, (1, 8), args.speed_repeats)
        result["data_images_per_sec"] = speed.data_rate(
            data.val_iter(rec, shape, args.batch_size, threads=args.threads))
    print_table(result, classes)
    if args.out:
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        write_json(args.out, result)
        png = os.path.splitext(args.out)[0] + ".pr.png"
        visualize.plot_pr_curves(curves, result["per_class"], png,
                                 "%s mAP %.4f" % (args.metric, result["mAP"]))
        print("results: %s, precision/recall: %s" % (args.out, png))
    return 0


if __name__ == "__main__":
    cli.run(main, get_args_parser())
