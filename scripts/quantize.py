"""Quantize a trained SSD detector to int8 for the CPU (MXNet's oneDNN backend), calibrated
on the first batches of a record file, and write it as an export that eval_voc.py and
detect.py run with --symbol PREFIX.

    python scripts/quantize.py --model ssd_demo --params runs/demo/train/final.params \
        --calib-rec data/sample/train.rec --out runs/demo/export/ssd_demo_int8
    python scripts/eval_voc.py --symbol runs/demo/export/ssd_demo_int8 --rec data/sample/test.rec

The export has the float32 export's format (PREFIX-symbol.json, PREFIX-0000.params,
PREFIX-meta.json; input data: Bx3xSxS RGB pixels 0-255, float32), with the convolutions,
their fused BatchNorm/ReLU and the poolings in int8; input normalization, decoding + NMS and
the heads' Flatten/Concat stay float32 (see ssd_gluon/deploy/quantize.py). PREFIX-meta.json
records precision int8 and the calibration. The files are reloaded in a fresh process before
they appear. It runs on CPUs only; int8 is fastest on CPUs with VNNI (avx512_vnni / avx_vnni
in /proc/cpuinfo).
"""

import argparse

from ssd_gluon import ops
from ssd_gluon.constants import POSTPROCESS
from ssd_gluon.data.verify import STRICT_HELP
from ssd_gluon.deploy.quantize import (
    CALIB_MODES,
    CHECK_IMAGES,
    QUANTIZED_DTYPES,
    export_quantized,
    open_calibration_records,
    output_prefix,
)
from ssd_gluon.model.zoo import load_network
from ssd_gluon.utils import cli


def get_args_parser():
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--model", required=True, help="preset name")
    p.add_argument("--params", required=True, help="trained .params of the preset")
    p.add_argument("--gluoncv", action="store_true", help="--params was saved by gluoncv")
    p.add_argument(
        "--classes", default=None, help="comma-separated class names (default: the model's)"
    )
    p.add_argument(
        "--data-shape",
        type=cli.POSITIVE,
        default=None,
        help="input side of the export (default: the preset's); calibration images are "
        "resized to it",
    )
    p.add_argument(
        "--ops",
        default="builtin",
        choices=ops.IMPLS,
        help="builtin: the graph runs on any MXNet 1.x with oneDNN; custom needs the ops library",
    )
    c = p.add_argument_group("calibration")
    c.add_argument("--calib-rec", required=True, help="PREFIX.rec of calibration images")
    c.add_argument(
        "--num-calib-batches",
        type=cli.POSITIVE,
        default=5,
        help="batches read from the start of --calib-rec (default 5)",
    )
    c.add_argument("--batch-size", type=cli.POSITIVE, default=16, help="calibration batch size")
    c.add_argument(
        "--calib-mode",
        default="naive",
        choices=CALIB_MODES,
        help="naive: each tensor's range is its min/max over the calibration images; "
        "entropy: the threshold that minimises the KL divergence of its histogram",
    )
    c.add_argument(
        "--quantized-dtype",
        default="auto",
        choices=QUANTIZED_DTYPES,
        help="auto: uint8 after a ReLU, int8 elsewhere",
    )
    c.add_argument(
        "--keep-float",
        default="",
        help="comma-separated layer names to keep float32 as well (e.g. vggatrous0_conv0_fwd)",
    )
    c.add_argument("--threads", type=cli.POSITIVE, default=2, help="image decoding threads")
    c.add_argument("--strict-data", action="store_true", help=STRICT_HELP)
    p.add_argument("--nms-thresh", type=cli.IOU, default=POSTPROCESS["nms_thresh"])
    p.add_argument("--nms-topk", type=cli.POSITIVE, default=POSTPROCESS["nms_topk"])
    p.add_argument("--post-nms", type=cli.POSITIVE, default=POSTPROCESS["post_nms"])
    p.add_argument("--score-thresh", type=cli.FRACTION, default=POSTPROCESS["score_thresh"])
    p.add_argument("--out", required=True, help="output PREFIX")
    return p


def main(args):
    classes = args.classes.split(",") if args.classes else None
    net = load_network(args.model, args.params, classes, args.ops, args.gluoncv)
    # Bad input first, each a one-line error before anything is written.
    records = open_calibration_records(args.calib_rec, net.classes, args.strict_data)
    output_prefix(args.out)
    shape = args.data_shape or net.base_size
    keep = [name for name in args.keep_float.split(",") if name]
    print(
        "calibrating (%s) on up to %d batches of %d images of %s, resized to %dx%d (the "
        "export's input size)"
        % (args.calib_mode, args.num_calib_batches, args.batch_size, records.source, shape, shape),
        flush=True,
    )
    r = export_quantized(
        net,
        args.out,
        records,
        shape,
        args.num_calib_batches,
        args.batch_size,
        args.calib_mode,
        args.quantized_dtype,
        keep,
        args.threads,
        **{k: getattr(args, k) for k in POSTPROCESS},
    )
    print(
        "exported %s and %s (int8, %s calibration on %d images; input data: Bx3x%dx%d RGB "
        "0-255 float32); reloaded in a fresh process: %d detections on %d images, as "
        "calibrated; float32: input normalization, decoding + NMS, the heads' Flatten/Concat%s"
        % (
            r["symbol"],
            r["params"],
            args.calib_mode,
            r["calib_images"],
            shape,
            shape,
            r["detections"],
            min(CHECK_IMAGES, r["calib_images"]),
            " and " + ", ".join(keep) if keep else "",
        )
    )
    return 0


if __name__ == "__main__":
    cli.run(main, get_args_parser())
