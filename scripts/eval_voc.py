"""Accuracy of a trained SSD on a packed test set: PASCAL VOC mAP (VOC07 11-point, the
default, or VOC2010+ all-point AP at IoU 0.5) or COCO AP (pycocotools: AP, AP50, AP75,
small/medium/large, AR1/10/100), a per-class table, and the detector's speed.

    python scripts/eval_voc.py --model ssd_demo --params runs/demo/train/final.params \\
        --rec data/sample/test.rec --out runs/demo/eval.json
    python scripts/eval_voc.py --symbol runs/demo/export/ssd_demo --rec data/sample/test.rec
    python scripts/eval_voc.py --symbol runs/demo/export/ssd_demo --rec data/coco/val.rec \
        --metric coco --out runs/coco/eval.json
    horovodrun -np 4 python scripts/eval_voc.py --model ssd_300_vgg16_atrous_voc \\
        --params ssd_300_vgg16_atrous_voc.params --gluoncv --rec data/voc/test.rec

Under horovodrun every worker evaluates its shard and the detections are gathered; rank 0
prints and writes. --out writes the JSON and, beside it, OUT.pr.png (VOC metrics) or
OUT.detections.json (COCO: the results file format, with the dataset's image and category ids
when the records were packed by data/pack_coco.py).
"""

import argparse
import os
import time

from ssd_gluon import ops
from ssd_gluon.data.loader import val_iter
from ssd_gluon.data.records import check_rec, read_classes
from ssd_gluon.data.verify import STRICT_HELP, open_records
from ssd_gluon.deploy.loading import load_detector
from ssd_gluon.engine.distributed import Workers
from ssd_gluon.engine.evaluate import METRICS, evaluate
from ssd_gluon.evaluation import speed
from ssd_gluon.evaluation.coco_map import STAT_NAMES
from ssd_gluon.utils import cli, visualize
from ssd_gluon.utils.files import output_file, write_json


def get_args_parser():
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    src = p.add_argument_group("detector: --model with --params, or --symbol")
    src.add_argument("--model", help="preset name")
    src.add_argument(
        "--params", help="our .params (checkpoint, best or final), or gluoncv's with --gluoncv"
    )
    src.add_argument("--gluoncv", action="store_true", help="--params was saved by gluoncv")
    src.add_argument("--symbol", help="PREFIX of files written by scripts/export_symbol.py")
    p.add_argument("--rec", required=True, help="test PREFIX.rec")
    p.add_argument("--batch-size", type=cli.POSITIVE, default=16)
    p.add_argument("--data-shape", type=cli.POSITIVE, default=None)
    p.add_argument("--ops", default="auto", choices=ops.IMPLS)
    p.add_argument("--strict-data", action="store_true", help=STRICT_HELP)
    p.add_argument(
        "--metric",
        default="voc07",
        choices=METRICS,
        help="VOC 11-point (VOC2007) or all-point (VOC2010+) AP at IoU 0.5, or COCO AP",
    )
    p.add_argument("--threads", type=cli.POSITIVE, default=2)
    p.add_argument(
        "--speed-repeats",
        type=cli.NON_NEGATIVE,
        default=10,
        help="timed calls per batch size for the speed figures (0: skip)",
    )
    p.add_argument("--out", default=None, help="JSON file for the results (+ OUT.pr.png)")
    return p


def print_table(result, classes):
    width = max(len(c) for c in classes + ["mAP"])
    for name, ap in result["per_class"].items():
        print("%-*s  %.4f" % (width, name, ap))
    print(
        "%-*s  %.4f  (%s, %d images, %.1f s)"
        % (width, "mAP", result["mAP"], result["metric"], result["images"], result["seconds"])
    )
    if result["metric"] == "coco":
        print("  ".join("%s %.4f" % (k, result[k]) for k in STAT_NAMES))
    for key, s in result.get("speed", {}).items():
        print(
            "speed %s: %.1f images/s (%.1f ms per batch), forward + decode + NMS"
            % (key.replace("_", " "), s["images_per_sec"], s["ms_per_batch"])
        )
    if "data_images_per_sec" in result:
        print(
            "data loading alone: %.1f images/s (%d threads)"
            % (result["data_images_per_sec"], result["threads"])
        )


def main(args):
    workers = Workers.from_env()
    if args.out and workers.is_root:
        output_file(args.out)
    ctx = workers.context()
    rec = check_rec(args.rec)
    detector = load_detector(
        args.symbol,
        args.model,
        args.params,
        read_classes(rec),
        args.ops,
        args.gluoncv,
        ctx,
        args.data_shape,
    )
    shape = detector.data_shape
    records = open_records(rec, len(detector.classes), args.strict_data, workers.is_root)
    # The detector takes pixels 0-255 (its normalization is inside), whatever its source.
    batches = val_iter(
        records,
        shape,
        args.batch_size,
        workers.rank,
        workers.size,
        threads=args.threads,
        normalize=False,
    )
    t0 = time.time()
    result = evaluate(
        detector.block,
        batches,
        ctx,
        detector.classes,
        args.metric,
        progress=workers.is_root,
        workers=workers,
        curves=True,
        image_ids=records.image_ids,
        category_ids=records.category_ids,
    )
    result.update(
        seconds=time.time() - t0,
        metric=args.metric,
        rec=rec,
        threads=args.threads,
        workers=workers.size,
        detector=detector.source,
    )
    workers.finish()
    if not workers.is_root:
        return 0
    curves, detections = result.pop("curves", None), result.pop("detections", None)
    if args.speed_repeats > 0:
        result["speed"] = speed.detector_speed(
            detector.block, shape, ctx, (1, 8), args.speed_repeats
        )
        result["data_images_per_sec"] = speed.data_rate(
            val_iter(records, shape, args.batch_size, threads=args.threads, normalize=False)
        )
    print_table(result, detector.classes)
    if args.out:
        write_json(args.out, result)
        if detections is not None:
            path = os.path.splitext(args.out)[0] + ".detections.json"
            write_json(path, detections, indent=None)
            print("results: %s, detections (COCO results format): %s" % (args.out, path))
        else:
            png = os.path.splitext(args.out)[0] + ".pr.png"
            visualize.plot_pr_curves(
                curves, result["per_class"], png, "%s mAP %.4f" % (args.metric, result["mAP"])
            )
            print("results: %s, precision/recall: %s" % (args.out, png))
    return 0


if __name__ == "__main__":
    cli.run(main, get_args_parser())
