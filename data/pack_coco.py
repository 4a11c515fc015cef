"""Pack a COCO instances JSON and its image folder into MXNet RecordIO files (like pack_voc.py).

    # MS COCO 2017: a shuffled training file (images without annotations left out) and a
    # validation file in file order (every image kept, for the COCO metric)
    python data/pack_coco.py --json annotations/instances_train2017.json --images train2017 \\
        --out data/coco/train
    python data/pack_coco.py --json annotations/instances_val2017.json --images val2017 \\
        --out data/coco/val --split val
    # an export of CVAT, Label Studio, Roboflow or labelme, some classes only
    python data/pack_coco.py --json export/annotations.json --images export/images \\
        --out data/mine/train --classes cat,dog

Writes PREFIX.rec, .idx, .lst, .classes.txt and .categories.txt (the COCO category id of
each class) and prints a summary; each skipped image or left-out annotation gets one line on
stderr. Errors print one ``error: ...`` line, exit status 1.
"""

import argparse

from ssd_gluon.data.classes import parse_class_list
from ssd_gluon.packing.coco import pack_coco
from ssd_gluon.packing.common import OTHER_CLASSES_MODES
from ssd_gluon.utils import cli

# train: records in a seeded random order (the reader shuffles within chunks only), images
# without objects left out; val: file order, every image kept (gluoncv's skip_empty=False).
SPLITS = {"train": (0, False), "val": (None, True)}


def get_args_parser():
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--json", required=True, help="COCO instances file (instances_*.json)")
    p.add_argument("--images", required=True, help="folder of the images' file_name paths")
    p.add_argument("--out", required=True, help="output prefix (PREFIX.rec, .idx, ...)")
    p.add_argument(
        "--split",
        choices=sorted(SPLITS),
        default="train",
        help="train: shuffled, images without objects left out; val: file order, all kept",
    )
    p.add_argument(
        "--classes",
        default="auto",
        help="'auto' (every category, in id order), comma-separated names or a file",
    )
    p.add_argument("--other-classes", choices=OTHER_CLASSES_MODES, default=None)
    p.add_argument("--strict", action="store_true", help="fail on the first bad item")
    p.add_argument("--workers", type=cli.NON_NEGATIVE, default=None, help="processes")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    return p


def main(args):
    seed, keep_empty = SPLITS[args.split]
    summary = pack_coco(
        args.json,
        args.images,
        args.out,
        class_names=None if args.classes == "auto" else parse_class_list(args.classes),
        strict=args.strict,
        num_workers=args.workers,
        progress=not args.no_progress,
        shuffle_seed=seed,
        other_classes=args.other_classes,
        keep_empty=keep_empty,
    )
    print(summary.format())
    return 0


if __name__ == "__main__":
    cli.run(main, get_args_parser(), interrupted="interrupted (no partial output written)")
