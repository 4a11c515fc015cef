"""Pack PASCAL VOC image sets into MXNet RecordIO files for ImageDetRecordIter.

    # the standard split in one command: DIR/train.* (VOC2007 + VOC2012 trainval) and
    # DIR/test.* (VOC2007 test, difficult flags kept)
    python data/pack_voc.py --voc-root VOCdevkit --out-dir data/voc
    # or any sets into one prefix
    python data/pack_voc.py --voc-root VOCdevkit --sets 2007-trainval,2012-trainval \\
        --out data/voc_trainval [--classes a,b,c | --classes FILE] [--strict] [--workers N]

Writes PREFIX.rec, PREFIX.idx, PREFIX.lst and PREFIX.classes.txt (see
ssd_gluon/data/records.py for the record layout) and prints a summary. Objects of classes
not in --classes are dropped (the image is kept) and counted per class in the summary;
--other-classes skip leaves such images out instead. Each skipped image gets one line on
stderr. Errors print one ``error: ...`` line, exit status 1.
"""

import argparse
import os

from ssd_gluon.data.classes import parse_class_list
from ssd_gluon.packing.voc import OTHER_CLASSES_MODES, UNKNOWN_CLASS, PackError, pack_voc
from ssd_gluon.utils import cli


def get_args_parser():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--voc-root", required=True, help="directory holding VOC<YEAR>/ folders (e.g. VOCdevkit)"
    )
    parser.add_argument(
        "--out-dir",
        default=None,
        help="pack DIR/train.* from --train-sets and DIR/test.* from --test-sets",
    )
    parser.add_argument(
        "--train-sets",
        default="2007-trainval,2012-trainval",
        help="with --out-dir (default: %(default)s)",
    )
    parser.add_argument(
        "--test-sets", default="2007-test", help="with --out-dir (default: %(default)s)"
    )
    parser.add_argument(
        "--shuffle-seed",
        type=int,
        default=None,
        help="write the records in a random order drawn with this seed "
        "(default with --out-dir: 0 for train.*, test.* in set order)",
    )
    parser.add_argument(
        "--sets",
        default=None,
        help="comma-separated YEAR-SPLIT image sets for --out, e.g. 2007-trainval,2012-trainval",
    )
    parser.add_argument("--out", default=None, help="output prefix (PREFIX.rec, .idx, .lst, ...)")
    parser.add_argument(
        "--classes",
        default=None,
        help="comma-separated class names or a file with one name per line "
        "(default: the 20 VOC classes)",
    )
    parser.add_argument(
        "--other-classes",
        choices=OTHER_CLASSES_MODES,
        default=None,
        help="what to do with an object whose class is not in --classes: 'drop' the object and "
        "keep the image (counted per class in the summary), 'skip' the whole image, or stop "
        "with an 'error' (default: drop; error with --strict)",
    )
    parser.add_argument(
        "--strict",
        action="store_true",
        help="fail on the first bad item instead of skipping it; an object of a class not in "
        "--classes is one unless --other-classes is given",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=None,
        help="decode/encode processes (default: CPU count; 0 = in-process)",
    )
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    return parser


def jobs(args):
    """[(sets, prefix, shuffle seed)] to pack, from --out-dir or --sets/--out."""
    if args.out_dir and (args.sets or args.out):
        raise PackError("--out-dir", "use either --out-dir or --sets with --out", "bad arguments")
    if args.out_dir:
        seed = 0 if args.shuffle_seed is None else args.shuffle_seed
        return [
            (args.train_sets, os.path.join(args.out_dir, "train"), seed),
            (args.test_sets, os.path.join(args.out_dir, "test"), None),
        ]
    if not (args.sets and args.out):
        raise PackError("--sets", "give --out-dir, or both --sets and --out", "bad arguments")
    return [(args.sets, args.out, args.shuffle_seed)]


def main(args):
    class_names = parse_class_list(args.classes)
    for sets, prefix, seed in jobs(args):
        sets = [s.strip() for s in sets.split(",") if s.strip()]
        try:
            summary = pack_voc(
                args.voc_root,
                sets,
                prefix,
                class_names=class_names,
                strict=args.strict,
                num_workers=args.workers,
                progress=not args.no_progress,
                shuffle_seed=seed,
                other_classes=args.other_classes,
            )
        except PackError as err:
            if err.kind == UNKNOWN_CLASS and args.other_classes is None:  # --strict's default
                hint = "with --strict; --other-classes drop or skip leaves it out"
                raise PackError(err.path, f"{err.problem}, fatal {hint}", err.kind) from None
            raise
        print(summary.format())
    return 0


if __name__ == "__main__":
    cli.run(main, get_args_parser(), interrupted="interrupted (no partial output written)")
