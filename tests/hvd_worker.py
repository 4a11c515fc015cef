"""Run scripts/train.py under horovodrun with two probes for the tests, then save what this
rank saw into $HVD_PROBE_DIR (outside the run directory):

- rank<R>.params: this rank's parameters after training (train.py writes from rank 0 only);
- rank<R>.labels.npy: the label rows of every training batch this rank read;
- rank<R>.writes.json: every file this process opened for writing, renamed or removed under
  --out (Python audit events; the library writes parameters through atomic_save's rename).
"""
import importlib.util
import json
import os
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
spec = importlib.util.spec_from_file_location("train", os.path.join(ROOT, "scripts", "train.py"))
train = importlib.util.module_from_spec(spec)
spec.loader.exec_module(train)        # first: it chooses MXNet settings before mxnet loads

import horovod.mxnet as hvd  # noqa: E402
from ssd_gluon import data  # noqa: E402

args = train.get_args_parser().parse_args(sys.argv[1:])
out_dir = os.path.abspath(args.out)
probe_dir = os.environ["HVD_PROBE_DIR"]
writes, labels = [], []


def audit(event, event_args):
    if event == "open":
        path, mode, flags = event_args
        writing = (isinstance(mode, str) and any(c in mode for c in "wax+")) or (
            mode is None and isinstance(flags, int) and flags & (os.O_WRONLY | os.O_RDWR))
    else:
        path, writing = event_args[0], event in ("os.rename", "os.remove", "os.mkdir")
    if writing and isinstance(path, (str, bytes)) and os.path.abspath(os.fsdecode(path)).startswith(out_dir):
        writes.append("%s %s" % (event, os.fsdecode(path)))


class Recording:
    """Passes the training batches through, keeping their labels."""

    def __init__(self, it):
        self.it = it

    def __iter__(self):
        return self

    def __next__(self):
        batch = next(self.it)
        labels.append(batch.label[0].asnumpy())
        return batch


real_train_iter = data.train_iter
data.train_iter = lambda *a, **k: Recording(real_train_iter(*a, **k))
sys.addaudithook(audit)
net = train.train(args)
rank = hvd.rank()
net.save_parameters(os.path.join(probe_dir, "rank%d.params" % rank))
np.save(os.path.join(probe_dir, "rank%d.labels.npy" % rank), np.concatenate(labels))
with open(os.path.join(probe_dir, "rank%d.writes.json" % rank), "w") as f:
    json.dump(writes, f)
