"""The end-to-end demo on the embedded sample: generate and pack it, train ``ssd_demo``,
evaluate on the held-out split, export, and draw detections. Everything goes under --out.

    python scripts/demo.py --out runs/demo
"""

import argparse
import json
import os
import subprocess
import sys
import time

from ssd_gluon.utils import cli
from ssd_gluon.utils.errors import CheckFailedError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def get_args_parser():
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--out", default="runs/demo")
    p.add_argument("--sample", default="data/sample", help="where the sample is generated")
    p.add_argument("--epochs", type=cli.POSITIVE, default=24)
    p.add_argument("--batch-size", type=cli.POSITIVE, default=16)
    return p


def run(step, argv, timings):
    """Run one CLI of this repository, echoing it; stop the demo if it fails."""
    print("\n== %s: python %s" % (step, " ".join(argv)), flush=True)
    t0 = time.time()
    proc = subprocess.run([sys.executable] + argv, cwd=ROOT)
    timings[step] = time.time() - t0
    if proc.returncode != 0:
        raise CheckFailedError("demo step '%s' failed (exit %d)" % (step, proc.returncode))


def main(args):
    out, sample = args.out, args.sample
    train_rec, test_rec = os.path.join(sample, "train.rec"), os.path.join(sample, "test.rec")
    params = os.path.join(out, "train", "final.params")
    timings, t0 = {}, time.time()
    # The preset's recipe (ssd_gluon.engine.recipe.demo_recipe: Adam, lr 1e-3 at batch 16, warm-up
    # half an epoch, x0.1 at 2/3 and 5/6, light augmentation). A rerun continues the run.
    resume = ["--resume"] if os.path.isdir(os.path.join(out, "train")) else []
    run("sample", ["data/make_sample.py", "--out", sample], timings)
    run(
        "train",
        [
            "scripts/train.py",
            "--model",
            "ssd_demo",
            "--train",
            train_rec,
            "--val",
            test_rec,
            "--epochs",
            str(args.epochs),
            "--batch-size",
            str(args.batch_size),
            "--val-interval",
            str(max(1, args.epochs // 4)),
            "--threads",
            "2",
            "--out",
            os.path.join(out, "train"),
        ]
        + resume,
        timings,
    )
    run(
        "eval",
        [
            "scripts/eval_voc.py",
            "--model",
            "ssd_demo",
            "--params",
            params,
            "--rec",
            test_rec,
            "--out",
            os.path.join(out, "eval.json"),
        ],
        timings,
    )
    # The same detections scored as COCO scores them (difficult objects count as crowd).
    run(
        "coco",
        [
            "scripts/eval_voc.py",
            "--model",
            "ssd_demo",
            "--params",
            params,
            "--rec",
            test_rec,
            "--metric",
            "coco",
            "--speed-repeats",
            "0",
            "--out",
            os.path.join(out, "eval_coco.json"),
        ],
        timings,
    )
    run(
        "export",
        [
            "scripts/export_symbol.py",
            "--model",
            "ssd_demo",
            "--params",
            params,
            "--out",
            os.path.join(out, "export", "ssd_demo"),
        ],
        timings,
    )
    voc = os.path.join(ROOT, sample, "VOCsample")
    with open(os.path.join(voc, "ImageSets", "Main", "test.txt")) as f:
        names = f.read().split()[:4]  # held-out images only
    images = [os.path.join(voc, "JPEGImages", name + ".jpg") for name in names]
    run(
        "detect",
        [
            "scripts/detect.py",
            "--model",
            "ssd_demo",
            "--params",
            params,
            "--thresh",
            "0.3",
            "--images",
        ]
        + images
        + ["--out", os.path.join(out, "detections")],
        timings,
    )
    with open(os.path.join(ROOT, out, "eval.json")) as f:
        result = json.load(f)
    with open(os.path.join(ROOT, out, "eval_coco.json")) as f:
        coco = json.load(f)
    print(
        "\n== demo finished in %.0f s (%s)"
        % (time.time() - t0, ", ".join("%s %.0f s" % kv for kv in timings.items()))
    )
    print("VOC07 mAP on the held-out split (%d images): %.4f" % (result["images"], result["mAP"]))
    print("COCO AP %.4f, AP50 %.4f, AP75 %.4f" % (coco["AP"], coco["AP50"], coco["AP75"]))
    for what, path in [
        ("training run (curves.png)", os.path.join(out, "train")),
        ("evaluation (VOC, COCO)", os.path.join(out, "eval.json") + ", eval_coco.json"),
        ("exported symbol + params", os.path.join(out, "export")),
        ("detections (PNG + JSON)", os.path.join(out, "detections")),
    ]:
        print("  %-26s %s" % (what, path))
    return 0


if __name__ == "__main__":
    cli.run(main, get_args_parser())
