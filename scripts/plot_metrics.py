"""Plot a training run's loss and validation mAP curves (also done at the end of training).

    python scripts/plot_metrics.py runs/ssd300            # writes runs/ssd300/curves.png
    python scripts/plot_metrics.py runs/ssd300 --out now.png

Safe while the run is going: it only reads metrics.jsonl.
"""

import argparse
import os

from ssd_gluon.utils import cli, visualize
from ssd_gluon.utils.errors import MissingFileError
from ssd_gluon.utils.files import read_jsonl


def get_args_parser():
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("run", help="run directory of scripts/train.py (holds metrics.jsonl)")
    p.add_argument("--out", default=None, help="PNG path (default RUN/curves.png)")
    return p


def main(args):
    metrics = os.path.join(args.run, "metrics.jsonl")
    if not os.path.isfile(metrics):
        raise MissingFileError("%s: no metrics file (is this a training run directory?)" % metrics)
    out = args.out or os.path.join(args.run, "curves.png")
    visualize.plot_training(read_jsonl(metrics), out)
    print(out)
    return 0


if __name__ == "__main__":
    cli.run(main, get_args_parser())
