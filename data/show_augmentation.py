"""Draw what the network is fed: a grid of augmented training samples with their boxes.

    python data/show_augmentation.py --rec data/voc/train.rec --augment paper --out aug.png

Reads the records through the training iterator (the same augmentation as scripts/train.py),
undoes the mean/std normalization and writes one PNG (written whole, then renamed).
"""

import argparse

from ssd_gluon.data.loader import augmented_samples
from ssd_gluon.data.transforms import AUGMENTATIONS
from ssd_gluon.data.verify import open_records
from ssd_gluon.utils import cli
from ssd_gluon.utils.files import output_file
from ssd_gluon.utils.visualize import augmentation_grid


def get_args_parser():
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--rec", required=True, help="training .rec packed by data/pack_voc.py")
    p.add_argument("--augment", default="paper", choices=sorted(AUGMENTATIONS))
    p.add_argument("--data-shape", type=cli.POSITIVE, default=300)
    p.add_argument("--num", type=cli.POSITIVE, default=16, help="samples to draw")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, help="output PNG")
    return p


def main(args):
    output_file(args.out)
    records = open_records(args.rec)
    images, objects = augmented_samples(
        records, args.data_shape, args.num, augment=args.augment, seed=args.seed
    )
    augmentation_grid(images, objects, records.classes, args.out)
    print(
        "wrote %s (%d samples, augment=%s, %dx%d)"
        % (args.out, len(images), args.augment, args.data_shape, args.data_shape)
    )
    return 0


if __name__ == "__main__":
    cli.run(main, get_args_parser())
