"""The mixed-precision training step (scripts/train.py --amp) against float32."""

import json

import mxnet as mx
import numpy as np

from ssd_gluon import get_model
from ssd_gluon.data import loader, records
from ssd_gluon.engine.step import TrainStep

from conftest import run_cli


def test_amp_step_follows_the_float32_step(sample_dir, tmp_path):
    rec = str(sample_dir / "train.rec")
    net = get_model("ssd_demo", classes=records.read_classes(rec), ops="custom")
    mx.random.seed(1)
    net.initialize()
    net(mx.nd.zeros((1, 3, 96, 96)))
    params = str(tmp_path / "init.params")
    net.save_parameters(params)
    trainer = mx.gluon.Trainer(net.collect_params(), "sgd", dict(learning_rate=0.005, momentum=0.9))
    step = TrainStep(net, trainer, ops="custom")
    batches = loader.train_iter(rec, 96, 8, augment="none", threads=1)
    fp32 = []
    for _ in range(6):
        batch = next(batches)
        fp32.append(
            [
                float(v.asscalar())
                for v in step(batch.data[0], records.split_label(batch.label[0])[0])
            ]
        )
    proc = run_cli("tests/workers/amp_worker.py", rec, params, "6")
    assert proc.returncode == 0, proc.stderr[-2000:]
    amp = json.loads(proc.stdout.strip().splitlines()[-1])
    assert np.isfinite(amp).all()
    # bfloat16 keeps 8 bits of mantissa: the losses track float32's within a few percent
    np.testing.assert_allclose(np.array(amp)[:, 0], np.array(fp32)[:, 0], rtol=0.05)
