"""Run scripts/train.py's train() under horovodrun, then save this rank's parameters and the
images it saw, so the test can compare ranks (train.py itself writes from rank 0 only)."""
import importlib.util
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
spec = importlib.util.spec_from_file_location("train", os.path.join(ROOT, "scripts", "train.py"))
train = importlib.util.module_from_spec(spec)
spec.loader.exec_module(train)        # first: it chooses MXNet settings before mxnet loads

import horovod.mxnet as hvd  # noqa: E402

args = train.get_args_parser().parse_args(sys.argv[1:])
net = train.train(args)
dump = os.path.join(args.out, "ranks")
os.makedirs(dump, exist_ok=True)
net.save_parameters(os.path.join(dump, "rank%d.params" % hvd.rank()))
