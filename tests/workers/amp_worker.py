"""The AMP training step in a process of its own (amp.init() patches MXNet for good): MXNet
AMP with bfloat16 on the CPU stands in for float16 on a GPU. Loads the given parameters,
trains ``steps`` steps on the first batches of a record file, prints the losses as JSON."""

import json
import sys

import mxnet as mx
from mxnet.contrib import amp

amp.init(target_dtype="bfloat16")

from ssd_gluon import get_model, load_parameters  # noqa: E402
from ssd_gluon.data import loader, records  # noqa: E402
from ssd_gluon.engine.step import TrainStep  # noqa: E402

rec, params, steps = sys.argv[1], sys.argv[2], int(sys.argv[3])
net = get_model("ssd_demo", classes=records.read_classes(rec), ops="custom")
load_parameters(net, params)
trainer = mx.gluon.Trainer(net.collect_params(), "sgd", dict(learning_rate=0.005, momentum=0.9))
amp.init_trainer(trainer)
step = TrainStep(net, trainer, ops="custom", amp=True)
batches = loader.train_iter(rec, 96, 8, augment="none", threads=1)
losses = []
for _ in range(steps):
    batch = next(batches)
    losses.append(
        [float(v.asscalar()) for v in step(batch.data[0], records.split_label(batch.label[0])[0])]
    )
print(json.dumps(losses))
