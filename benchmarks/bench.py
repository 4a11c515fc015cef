"""Side-by-side benchmarks, ours against the peer in one process on the same inputs.

    python benchmarks/bench.py ops       # custom operators vs MXNet's contrib built-ins
    python benchmarks/bench.py data      # training input pipeline vs gluoncv's DataLoader
    python benchmarks/bench.py train     # training images/s vs a gluoncv-style step; Horovod 1 vs 2
    python benchmarks/bench.py infer     # SSD300 inference images/s: ours, ONNX, int8 vs gluoncv
    python benchmarks/bench.py all       # every benchmark available

(``python scripts/bench.py ...`` runs this file.)

Prints one line per case with both times and the ratio ours / peer (below 1: ours is
faster) and, with --out, writes the rows and the machine as JSON plus a Markdown table.
"""

import argparse
import json
import os

from ssd_gluon.utils import cli
from ssd_gluon.utils.files import atomic_save

from common import machine, markdown_table
from inference import bench_infer
from operators import bench_ops
from pipeline import bench_data
from training import bench_train

SUITES = {"data": bench_data, "infer": bench_infer, "ops": bench_ops, "train": bench_train}


def get_args_parser():
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("suite", choices=sorted(SUITES) + ["all"])
    p.add_argument("--repeats", type=cli.POSITIVE, default=20, help="timed calls per case (median)")
    p.add_argument("--out", default=None, help="write PREFIX.json and PREFIX.md")
    return p


def main(args):
    print("machine:", machine())
    results = {}
    for name in sorted(SUITES) if args.suite == "all" else [args.suite]:
        print("== %s" % name)
        results[name] = SUITES[name](repeats=args.repeats)
    if args.out:
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        report = {"machine": machine(), "results": results}
        atomic_save(lambda p: _write(p, json.dumps(report, indent=1)), args.out + ".json")
        table = "\n\n".join("### %s\n\n%s" % (k, markdown_table(v)) for k, v in results.items())
        atomic_save(lambda p: _write(p, table + "\n"), args.out + ".md")
    return 0


def _write(path, text):
    with open(path, "w") as f:
        f.write(text)


if __name__ == "__main__":
    cli.run(main, get_args_parser())
