"""Export a trained SSD detector (normalization, network, decoding, per-class NMS) as
PREFIX-symbol.json + PREFIX-0000.params, then verify the files in a fresh process.

    python scripts/export_symbol.py --model ssd_demo --params runs/demo/train/final.params \
        --out runs/demo/export/ssd_demo

The exported graph takes one input ``data``: RGB pixels 0-255, shape (B, 3, S, S), float32
(or uint8 with --input-dtype uint8, cast inside the graph), and returns ids (B,K,1),
scores (B,K,1), boxes (B,K,4) in input pixels. PREFIX-meta.json records the input size and
dtype, the class names and the operators the graph needs.
"""

import argparse

from ssd_gluon import ops
from ssd_gluon.constants import POSTPROCESS
from ssd_gluon.deploy.normalize import INPUT_DTYPES
from ssd_gluon.deploy.symbol import export_detector
from ssd_gluon.deploy.to_onnx import export_onnx
from ssd_gluon.model.zoo import load_network
from ssd_gluon.utils import cli


def get_args_parser():
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--model", required=True)
    p.add_argument("--params", required=True)
    p.add_argument("--gluoncv", action="store_true", help="--params was saved by gluoncv")
    p.add_argument(
        "--classes", default=None, help="comma-separated class names (default: the model's)"
    )
    p.add_argument("--data-shape", type=cli.POSITIVE, default=None)
    p.add_argument(
        "--ops",
        default="builtin",
        choices=ops.IMPLS,
        help="builtin: the graph runs on any MXNet 1.x; custom needs the ops library",
    )
    p.add_argument(
        "--input-dtype",
        default="float32",
        choices=INPUT_DTYPES,
        help="dtype of the graph's input (uint8 is cast to float32 inside)",
    )
    p.add_argument("--nms-thresh", type=cli.IOU, default=POSTPROCESS["nms_thresh"])
    p.add_argument("--nms-topk", type=cli.POSITIVE, default=POSTPROCESS["nms_topk"])
    p.add_argument("--post-nms", type=cli.POSITIVE, default=POSTPROCESS["post_nms"])
    p.add_argument("--score-thresh", type=cli.FRACTION, default=POSTPROCESS["score_thresh"])
    p.add_argument("--out", required=True, help="output PREFIX")
    p.add_argument(
        "--onnx",
        action="store_true",
        help="also write PREFIX.onnx, the network without decoding/NMS (outputs probs, "
        "offsets, anchors, for your own post-processing), and PREFIX.detect.onnx, the whole "
        "detector in standard ONNX operators (outputs ids, scores, boxes as the MXNet "
        "export); see docs/deployment.md. Both are checked with onnxruntime against MXNet",
    )
    return p


def main(args):
    classes = args.classes.split(",") if args.classes else None
    net = load_network(args.model, args.params, classes, args.ops, args.gluoncv)
    shape = args.data_shape or net.base_size
    kwargs = {k: getattr(args, k) for k in POSTPROCESS}
    symbol_file, params_file, n = export_detector(net, args.out, shape, args.input_dtype, **kwargs)
    print(
        "exported %s and %s (input data: Bx3x%dx%d RGB 0-255 %s); verified in a fresh "
        "process: %d detections identical"
        % (symbol_file, params_file, shape, shape, args.input_dtype, n)
    )
    if args.onnx:
        path, detect_path = args.out + ".onnx", args.out + ".detect.onnx"
        r = export_onnx(net, path, shape, detect_path=detect_path, **kwargs)
        print(
            "exported %s (input data: Bx3x%dx%d RGB 0-255 float32; outputs probs, offsets, "
            "anchors); verified with onnxruntime + decode_and_nms in a process without MXNet: "
            "%d detections on %d images match the Gluon detector's within 1e-4 (raw outputs "
            "max diff %.1g%s)"
            % (
                path,
                shape,
                shape,
                r["detections"],
                r["images"],
                max(r["max_diff_probs"], r["max_diff_offsets"], r["max_diff_anchors"]),
                "; %d rows ordered by tied scores not compared" % r["excused"]
                if r["excused"]
                else "",
            )
        )
        print(
            "exported %s (input data: Bx3x%dx%d RGB 0-255 float32; outputs ids, scores, boxes "
            "in input pixels, decoding and per-class NMS inside); verified with onnxruntime in "
            "a process without MXNet: %d detections on %d images match the Gluon detector's "
            "(scores within %.2g, boxes within %.2g px%s)"
            % (
                detect_path,
                shape,
                shape,
                r["detect_detections"],
                r["images"],
                r["detect_score_atol"],
                r["detect_box_atol"],
                "; %d rows ordered by tied scores not compared" % r["detect_excused"]
                if r["detect_excused"]
                else "",
            )
        )
    return 0


if __name__ == "__main__":
    cli.run(main, get_args_parser())
