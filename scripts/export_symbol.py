"""Export a trained SSD detector (normalization, network, decoding, per-class NMS) as
PREFIX-symbol.json + PREFIX-0000.params, then verify the files in a fresh process.

    python scripts/export_symbol.py --model ssd_demo --params runs/demo/train/final.params \
        --out runs/demo/export/ssd_demo

The exported graph takes one input ``data``: float32 RGB pixels 0-255, shape
(B, 3, S, S), and returns ids (B,K,1), scores (B,K,1), boxes (B,K,4) in input pixels.
"""
import argparse

from ssd_gluon import cli, ops as ssd_ops
from ssd_gluon.checkpoint import load_detector
from ssd_gluon.export import export_detector, verify_export


def get_args_parser():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True)
    p.add_argument("--params", required=True)
    p.add_argument("--gluoncv", action="store_true", help="--params was saved by gluoncv")
    p.add_argument("--classes", default=None, help="comma-separated class names (default: the model's)")
    p.add_argument("--data-shape", type=int, default=None)
    p.add_argument("--ops", default="builtin", choices=["auto", "custom", "builtin"],
                   help="builtin: the graph runs on any MXNet 1.x; custom needs the ops library")
    p.add_argument("--nms-thresh", type=float, default=0.45)
    p.add_argument("--nms-topk", type=int, default=400)
    p.add_argument("--post-nms", type=int, default=200)
    p.add_argument("--score-thresh", type=float, default=0.01)
    p.add_argument("--out", required=True, help="output PREFIX")
    return p


def main(args):
    classes = args.classes.split(",") if args.classes else None
    net = load_detector(args.model, args.params, classes, args.ops, args.gluoncv)
    shape = args.data_shape or net.base_size
    kwargs = dict(nms_thresh=args.nms_thresh, nms_topk=args.nms_topk, post_nms=args.post_nms,
                  score_thresh=args.score_thresh)
    symbol_file, params_file = export_detector(net, args.out, shape, **kwargs)
    library = ssd_ops.LIBRARY_PATH if ssd_ops.resolve(args.ops) == "custom" else None
    n = verify_export(net, args.out, shape, library=library, **kwargs)
    print("exported %s and %s (input data: 1x3x%dx%d RGB 0-255); verified in a fresh "
          "process: %d detections identical" % (symbol_file, params_file, shape, shape, n))
    return 0


if __name__ == "__main__":
    cli.run(main, get_args_parser())
