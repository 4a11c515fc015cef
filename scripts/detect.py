"""Detect objects in images and save PNGs with the boxes drawn plus a JSON of detections.

    python scripts/detect.py --model ssd_demo --params runs/demo/train/final.params \
        --images 'data/sample/VOCsample/JPEGImages/0010*.jpg' --out runs/demo/detections
"""
import argparse
import glob
import os

import mxnet as mx

from ssd_gluon import cli, visualize
from ssd_gluon.checkpoint import load_detector
from ssd_gluon.files import write_json
from ssd_gluon.export import deploy_block


def get_args_parser():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True)
    p.add_argument("--params", required=True)
    p.add_argument("--classes", default=None, help="comma-separated class names (default: the model's)")
    p.add_argument("--images", nargs="+", required=True, help="image files, folders or globs")
    p.add_argument("--thresh", type=float, default=0.5, help="score threshold for drawing")
    p.add_argument("--ops", default="auto", choices=["auto", "custom", "builtin"])
    p.add_argument("--out", required=True, help="output folder")
    return p


def expand_images(patterns):
    """Files from paths, folders (their .jpg/.jpeg/.png) and globs, in sorted order."""
    files = []
    for pattern in patterns:
        if os.path.isdir(pattern):
            files += sorted(os.path.join(pattern, f) for f in os.listdir(pattern)
                            if f.lower().endswith((".jpg", ".jpeg", ".png")))
        elif any(c in pattern for c in "*?["):
            files += sorted(glob.glob(pattern))
        else:
            files.append(pattern)
    if not files:
        raise FileNotFoundError("%s: no images found" % " ".join(patterns))
    return files


def main(args):
    classes = args.classes.split(",") if args.classes else None
    net = load_detector(args.model, args.params, classes, args.ops)
    block = deploy_block(net)
    block.hybridize()
    os.makedirs(args.out, exist_ok=True)
    results = {}
    for path in expand_images(args.images):
        img = visualize.read_image(path)
        ids, scores, boxes = [o[0].asnumpy() for o in
                              block(mx.nd.array(visualize.to_input(img, net.base_size)))]
        dets = visualize.detections_to_list(ids, scores, boxes, net.classes,
                                            (img.shape[1], img.shape[0]), net.base_size, args.thresh)
        png = os.path.join(args.out, os.path.splitext(os.path.basename(path))[0] + ".png")
        visualize.draw(img, dets, png)
        results[path] = dets
        print("%s: %d detections -> %s" % (path, len(dets), png))
    write_json(os.path.join(args.out, "detections.json"), results)
    return 0


if __name__ == "__main__":
    cli.run(main, get_args_parser())
