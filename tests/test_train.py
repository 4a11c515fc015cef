"""Training end to end on the sample: single process and horovodrun -np 2."""
import json
import os
import sys

import mxnet as mx
import numpy as np
import pytest

from conftest import run_cli
from ssd_gluon import data


def test_single_process_loss_decreases(sample_dir, tmp_path):
    out = tmp_path / "run"
    proc = run_cli("scripts/train.py", "--model", "ssd_demo", "--train",
                   str(sample_dir / "train.rec"), "--epochs", "4", "--batch-size", "8",
                   "--optimizer", "adam", "--lr", "0.002", "--augment", "none",
                   "--log-interval", "4", "--threads", "1", "--ops", "builtin", "--out", str(out))
    assert proc.returncode == 0, proc.stderr[-2000:]
    log = [json.loads(line) for line in open(out / "log.jsonl")]
    assert [r["epoch"] for r in log] == [1, 2, 3, 4]
    assert log[-1]["loss"] < log[0]["loss"]
    assert (out / "final.params").exists() and (out / "config.json").exists()
    assert sorted(p.name for p in out.glob("epoch-*.params")) == [
        "epoch-0002.params", "epoch-0003.params", "epoch-0004.params"]     # last 3 kept
    assert not list(out.glob("*.tmp-*"))


def test_horovod_two_ranks_stay_identical(sample_dir, tmp_path):
    horovodrun = os.path.join(os.path.dirname(sys.executable), "horovodrun")
    if not os.path.exists(horovodrun):
        pytest.skip("horovod is not installed")
    out = tmp_path / "hvd"
    env = dict(os.environ, OMP_NUM_THREADS="1", MXNET_CPU_WORKER_NTHREADS="1")
    proc = run_cli(horovodrun, "-np", "2", "-H", "localhost:2", sys.executable,
                   "tests/hvd_worker.py", "--model", "ssd_demo", "--train",
                   str(sample_dir / "train.rec"), "--epochs", "1", "--batch-size", "8",
                   "--augment", "paper", "--threads", "1", "--ops", "builtin", "--lr", "0.001",
                   "--out", str(out), env=env)
    assert proc.returncode == 0, (proc.stdout[-2000:], proc.stderr[-2000:])
    r0 = mx.nd.load(str(out / "ranks" / "rank0.params"))
    r1 = mx.nd.load(str(out / "ranks" / "rank1.params"))
    assert r0.keys() == r1.keys()
    final = mx.nd.load(str(out / "final.params"))       # written by rank 0 only
    for k in r0:
        np.testing.assert_array_equal(r0[k].asnumpy(), r1[k].asnumpy(), err_msg=k)
        np.testing.assert_array_equal(final[k].asnumpy(), r0[k].asnumpy(), err_msg=k)
    config = json.load(open(out / "config.json"))
    assert config["world_size"] == 2 and config["effective_lr"] == pytest.approx(0.002)
    # both ranks run the full batches of the smaller byte-range shard
    shards = data.shard_sizes(str(sample_dir / "train.rec"), 2)
    assert sum(shards) == 96 and config["iters_per_epoch"] == min(shards) // 8
    assert "training ssd_demo on 96 images, 2 worker(s)" in proc.stdout
