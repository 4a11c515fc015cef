"""Detect objects in images and save PNGs with the boxes drawn plus a JSON of detections
(class name, score, box in image pixels), from a checkpoint or an exported symbol.

    python scripts/detect.py --model ssd_demo --params runs/demo/train/final.params \
        --images 'data/sample/VOCsample/JPEGImages/0010*.jpg' --out runs/demo/detections
    python scripts/detect.py --symbol runs/demo/export/ssd_demo --images photos/ --out dets/
"""

import argparse
import os
import sys

import mxnet as mx

from ssd_gluon import ops
from ssd_gluon.deploy import io
from ssd_gluon.deploy.loading import load_detector
from ssd_gluon.utils import cli, visualize
from ssd_gluon.utils.errors import UserError
from ssd_gluon.utils.files import output_folder, write_json


def get_args_parser():
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--model", help="preset name (with --params)")
    p.add_argument("--params", help="our .params: a checkpoint, best or final")
    p.add_argument("--symbol", help="PREFIX of files written by scripts/export_symbol.py")
    p.add_argument(
        "--classes", default=None, help="comma-separated class names (default: the model's)"
    )
    p.add_argument("--images", nargs="+", required=True, help="image files, folders or globs")
    p.add_argument("--thresh", type=cli.FRACTION, default=0.5, help="score threshold for drawing")
    p.add_argument("--ops", default="auto", choices=ops.IMPLS)
    p.add_argument("--out", required=True, help="output folder (PNG per image + detections.json)")
    p.add_argument(
        "--out-with-inputs",
        action="store_true",
        help="allow an --out folder that holds input images (outputs never replace them)",
    )
    return p


def main(args):
    classes = args.classes.split(",") if args.classes else None
    detector = load_detector(args.symbol, args.model, args.params, classes, args.ops)
    size = detector.data_shape
    files = io.expand_images(args.images)
    output_folder(args.out)
    outputs = io.output_names(files, args.out, allow_inputs_in_out=args.out_with_inputs)
    results, bad = {}, 0
    for path in files:
        try:
            img = io.read_image(path)
        except UserError as err:  # report, go on with the others
            print("error: %s" % err, file=sys.stderr)
            bad += 1
            continue
        pixels = mx.nd.array(io.to_input(img, size))
        ids, scores, boxes = [o[0].asnumpy() for o in detector.block(pixels)]
        dets = io.detections_to_list(
            ids, scores, boxes, detector.classes, (img.shape[1], img.shape[0]), size, args.thresh
        )
        png = outputs[path]
        visualize.draw(img, dets, png)
        results[path] = dets
        print("%s: %d detections -> %s" % (path, len(dets), png))
    write_json(os.path.join(args.out, "detections.json"), results)
    return 1 if bad else 0


if __name__ == "__main__":
    cli.run(main, get_args_parser())
