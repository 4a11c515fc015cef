"""Run ssd_gluon.engine.train under horovodrun with two probes for the tests, then save what
this rank saw into $HVD_PROBE_DIR (outside the run directory):

- rank<R>.params: this rank's parameters after training (train() writes from rank 0 only);
- rank<R>.labels.npy: the label rows of every training batch this rank trained on (a hook);
- rank<R>.writes.json: every file this process opened for writing, renamed or removed under
  the run directory (Python audit events; the library writes parameters through
  atomic_save's rename).

    horovodrun -np 2 python tests/workers/hvd_worker.py '{"model": "ssd_demo", ...}'

The argument is a JSON object of TrainConfig fields; ``{rank}`` in its ``out`` becomes this
rank's number (a run directory per host, as on hosts without a shared filesystem).
"""

import json
import os
import sys

import numpy as np

from ssd_gluon.engine.hooks import Hook
from ssd_gluon.engine.train import TrainConfig, train

rank = int(os.environ["HOROVOD_RANK"])  # set by horovodrun
config = TrainConfig(**json.loads(sys.argv[1]))
config.out = config.out.format(rank=rank)
out_dir = os.path.abspath(config.out)
probe_dir = os.environ["HVD_PROBE_DIR"]
writes = []


def audit(event, event_args):
    if event == "open":
        path, mode, flags = event_args
        writing = (isinstance(mode, str) and any(c in mode for c in "wax+")) or (
            mode is None and isinstance(flags, int) and flags & (os.O_WRONLY | os.O_RDWR)
        )
    else:
        path, writing = event_args[0], event in ("os.rename", "os.remove", "os.mkdir")
    if (
        writing
        and isinstance(path, (str, bytes))
        and os.path.abspath(os.fsdecode(path)).startswith(out_dir)
    ):
        writes.append("%s %s" % (event, os.fsdecode(path)))


class RecordLabels(Hook):
    """Keeps the labels of every step's batch."""

    def __init__(self):
        self.labels = []

    def before_step(self, loop):
        self.labels.append(loop.batch.label[0].asnumpy())


recorder = RecordLabels()
sys.addaudithook(audit)
net = train(config, hooks=[recorder])
net.save_parameters(os.path.join(probe_dir, "rank%d.params" % rank))
np.save(os.path.join(probe_dir, "rank%d.labels.npy" % rank), np.concatenate(recorder.labels))
with open(os.path.join(probe_dir, "rank%d.writes.json" % rank), "w") as f:
    json.dump(writes, f)
