"""Generate the embedded synthetic sample (VOC layout) and pack it into train/test records.

python data/make_sample.py --out data/sample
"""

import argparse
import os

from ssd_gluon.data.classes import SAMPLE_CLASSES
from ssd_gluon.data.synthetic import YEAR, generate_sample
from ssd_gluon.packing.voc import pack_voc
from ssd_gluon.utils import cli


def get_args_parser():
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--out", default="data/sample", help="folder for VOCsample/ and the records")
    p.add_argument("--num-train", type=cli.POSITIVE, default=2000)
    p.add_argument("--num-test", type=cli.POSITIVE, default=250)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--force", action="store_true", help="regenerate even if the records exist")
    return p


def main(args):
    recs = [os.path.join(args.out, split + ".rec") for split in ("train", "test")]
    if all(os.path.isfile(r) for r in recs) and not args.force:
        print("sample already packed: %s" % ", ".join(recs))
        return 0
    generate_sample(args.out, args.num_train, args.num_test, args.seed)
    for split in ("train", "test"):
        summary = pack_voc(
            args.out,
            ["%s-%s" % (YEAR, split)],
            os.path.join(args.out, split),
            class_names=SAMPLE_CLASSES,
            strict=True,
            progress=False,
        )
        print(
            "%s: %d images, objects %s, difficult %d"
            % (summary.outputs[".rec"], summary.images, dict(summary.objects), summary.difficult)
        )
    return 0


if __name__ == "__main__":
    cli.run(main, get_args_parser())
