"""Pack a plain folder of images with VOC XML annotations (LabelImg's layout) into train and
validation RecordIO files.

    # XML files beside the images, 10% held out (seeded), classes found in the annotations
    python data/pack_folder.py --folder photos --out-dir data/mine
    # XML files in photos/labels, the split given by two lists of image names
    python data/pack_folder.py --folder photos --annotations labels --out-dir data/mine \\
        --train-list train.txt --val-list val.txt --classes cat,dog

Writes DIR/train.* (records in a seeded random order, images without objects left out) and
DIR/val.* (folder order, every image kept), each PREFIX.rec, .idx, .lst and .classes.txt, and
prints a summary per file; each skipped image gets one line on stderr. Errors print one
``error: ...`` line, exit status 1.
"""

import argparse
import os

from ssd_gluon.data.classes import parse_class_list
from ssd_gluon.packing.common import OTHER_CLASSES_MODES
from ssd_gluon.packing.folder import (
    discover_classes,
    folder_items,
    items_in_list,
    pack_folder,
    split_items,
)
from ssd_gluon.utils import cli
from ssd_gluon.utils.errors import UserError


def get_args_parser():
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--folder", required=True, help="folder of the images")
    p.add_argument(
        "--annotations", default=None, help="folder of the XML files (default: --folder)"
    )
    p.add_argument("--out-dir", required=True, help="writes OUT_DIR/train.* and OUT_DIR/val.*")
    p.add_argument(
        "--val-fraction",
        type=cli.float_in(0, 0.99),
        default=0.1,
        help="share of the images held out for validation (default: %(default)s)",
    )
    p.add_argument("--seed", type=int, default=0, help="of the split and the training order")
    p.add_argument("--train-list", default=None, help="file of training image names")
    p.add_argument("--val-list", default=None, help="file of validation image names")
    p.add_argument(
        "--classes",
        default="auto",
        help="'auto' (the sorted names found in the annotations, printed), comma-separated "
        "names or a file",
    )
    p.add_argument("--other-classes", choices=OTHER_CLASSES_MODES, default=None)
    p.add_argument("--strict", action="store_true", help="fail on the first bad item")
    p.add_argument("--workers", type=cli.NON_NEGATIVE, default=None, help="processes")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    return p


def main(args):
    if bool(args.train_list) != bool(args.val_list):
        raise UserError("--train-list and --val-list go together")
    items = folder_items(args.folder, args.annotations)
    if args.train_list:
        train, val = (items_in_list(items, f) for f in (args.train_list, args.val_list))
    else:
        train, val = split_items(items, args.val_fraction, args.seed)
    if args.classes == "auto":
        classes = discover_classes(args.folder, items)
        print("classes found in the annotations: %s" % ",".join(classes))
    else:
        classes = parse_class_list(args.classes)
    for name, part, seed, keep_empty in (
        ("train", train, args.seed, False),
        ("val", val, None, True),
    ):
        if not part:
            print("%s: no images, not written" % name)
            continue
        summary = pack_folder(
            args.folder,
            part,
            os.path.join(args.out_dir, name),
            classes,
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
