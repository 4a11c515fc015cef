"""scripts/train.py (ssd_gluon.engine.train) end to end on the sample: one process, resume
after SIGTERM/SIGKILL, the NaN guard, argument errors, and horovodrun -np 2 (identical ranks,
disjoint shards, rank 0 alone writes, gathered validation, a dead rank)."""

import json
import os
import signal
import subprocess
import sys
import time

import mxnet as mx
import numpy as np
import pytest

from ssd_gluon import SSDPredictor, load_network
from ssd_gluon.data import loader, records
from ssd_gluon.data.records import HEADER_WIDTH
from ssd_gluon.data.verify import open_records
from ssd_gluon.engine.evaluate import evaluate
from ssd_gluon.utils.files import read_jsonl

from conftest import ROOT, assert_one_line_error, run_cli

HOROVODRUN = os.path.join(os.path.dirname(sys.executable), "horovodrun")


# Deterministic ssd_demo runs: 1 decode thread (augmentation draws in a fixed order).
DETERMINISTIC = (
    "--model ssd_demo --batch-size 8 --optimizer sgd --lr 0.02 --augment paper "
    "--log-interval 4 --threads 1 --ops builtin"
).split()


def train_argv(sample_dir, out, *extra, epochs=2):
    """scripts/train.py and its arguments for a deterministic run."""
    return [
        "scripts/train.py",
        *DETERMINISTIC,
        "--train",
        str(sample_dir / "train.rec"),
        "--epochs",
        str(epochs),
        "--out",
        str(out),
        *extra,
    ]


def train_cli(sample_dir, out, *extra, epochs=2):
    return run_cli(*train_argv(sample_dir, out, *extra, epochs=epochs))


def load(path):
    return {k: v.asnumpy() for k, v in mx.nd.load(str(path)).items()}


def assert_same_params(a, b):
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)


def test_single_process_run_writes_everything(sample_dir, tmp_path):
    out = tmp_path / "run"
    proc = run_cli(
        "scripts/train.py",
        "--model",
        "ssd_demo",
        "--train",
        str(sample_dir / "train.rec"),
        "--val",
        str(sample_dir / "test.rec"),
        "--epochs",
        "4",
        "--batch-size",
        "8",
        "--lr",
        "0.008",
        "--augment",
        "none",
        "--val-interval",
        "2",
        "--log-interval",
        "4",
        "--threads",
        "1",
        "--ops",
        "builtin",
        "--out",
        str(out),
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    records = read_jsonl(out / "metrics.jsonl")
    epochs = [r for r in records if r["type"] == "epoch"]
    assert [r["epoch"] for r in epochs] == [1, 2, 3, 4]
    assert epochs[-1]["loss"] < epochs[0]["loss"]
    train = [r for r in records if r["type"] == "train"]
    assert [r["step"] for r in train] == list(range(4, 49, 4))  # 12 iterations/epoch
    assert {"iteration", "loss", "cls_loss", "box_loss", "lr", "images_per_sec"} <= set(train[0])
    val = [r for r in records if r["type"] == "val"]
    assert [r["epoch"] for r in val] == [2, 4] and set(val[0]["per_class"]) == {
        "circle",
        "rectangle",
        "triangle",
        "cross",
    }
    best = json.load(open(out / "best.json"))
    assert best["val_mAP"] == max(r["mAP"] for r in val) == best["best_mAP"]
    names = sorted(p.name for p in out.iterdir())
    assert [n for n in names if n.startswith("ckpt-")] == [
        "ckpt-0000000%d.%s" % (s, x) for s in (24, 36, 48) for x in ("json", "params", "states")
    ]
    assert {"config.json", "curves.png", "final.params", "best.params"} <= set(names)
    assert not [n for n in names if ".tmp-" in n]
    config = json.load(open(out / "config.json"))
    assert config["effective_lr"] == pytest.approx(0.008 * 8 / 32) and config["optimizer"] == "adam"
    assert "epoch 4/4  iter 12/12" in proc.stdout and "ETA" in proc.stdout
    assert_same_params(load(out / "final.params"), load(out / "ckpt-000000048.params"))


def test_resume_after_sigterm_and_sigkill_equals_uninterrupted_run(sample_dir, tmp_path):
    whole = train_cli(sample_dir, tmp_path / "a", epochs=3)
    assert whole.returncode == 0, whole.stderr[-2000:]
    b = tmp_path / "b"
    term = train_cli(sample_dir, b, "--inject", "term@7", epochs=3)  # mid epoch 1
    assert term.returncode == 143, term.stderr[-2000:]
    assert "stopped by SIGTERM at epoch 1 iteration 7" in term.stdout
    assert json.load(open(b / "ckpt-000000007.json"))["iteration"] == 7
    kill = train_cli(sample_dir, b, "--resume", "--inject", "kill@30", epochs=3)  # mid epoch 3
    assert kill.returncode == -9
    assert "resuming from %s" % (b / "ckpt-000000007.json") in kill.stdout
    done = train_cli(sample_dir, b, "--resume", "auto", epochs=3)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "(epoch 2, iteration 12, step 24)" in done.stdout
    assert_same_params(load(tmp_path / "a" / "final.params"), load(b / "final.params"))

    # the metrics file reads as one run: the redone steps replace the lost ones
    def losses(run):
        return [
            (r["step"], r["loss"])
            for r in read_jsonl(run / "metrics.jsonl")
            if r["type"] == "train"
        ]

    assert losses(b) == losses(tmp_path / "a")


def test_second_ctrl_c_during_a_long_step_aborts(sample_dir, tmp_path):
    """Two SIGINTs 0.2 s apart while the main thread sits in one long MXNet call (a step of
    a big model on a CPU takes seconds): Python runs its handler once for both, but the run
    counts the deliveries and aborts instead of taking them for one checkpoint request."""
    argv = train_argv(sample_dir, tmp_path / "cc", "--inject", "stall@3", epochs=50)
    proc = subprocess.Popen(
        [sys.executable, *argv], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        for line in proc.stdout:  # the stall is announced, then lasts seconds
            if line.startswith("fault: stall"):
                break
        time.sleep(0.3)
        os.kill(proc.pid, signal.SIGINT)
        time.sleep(0.2)
        os.kill(proc.pid, signal.SIGINT)
        stdout, _ = proc.communicate(timeout=600)
    finally:
        proc.kill()
    assert proc.returncode == -signal.SIGINT, stdout
    assert "stopped by SIGINT" not in stdout


def test_nan_loss_stops_and_names_the_last_good_checkpoint(sample_dir, tmp_path):
    out = tmp_path / "nan"
    proc = train_cli(sample_dir, out, "--inject", "nan@14")  # epoch 2, logged at 16
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert lines[-1].startswith("error: training diverged at epoch 2 iteration 4 (step 16): ")
    assert "nan" in lines[-1]
    assert lines[-1].endswith("stopped; last good checkpoint: %s" % (out / "ckpt-000000012.json"))
    assert sorted(p.name for p in out.glob("ckpt-*.json")) == ["ckpt-000000012.json"]
    assert not (out / "final.params").exists()
    params = load(out / "ckpt-000000012.params")
    assert all(np.isfinite(v).all() for v in params.values())


@pytest.mark.parametrize(
    "extra, message",
    [
        (
            ["--model", "ssd_300_vgg16_atrous_voc"],
            "is trained from an ImageNet VGG16: pass --pretrained-base",
        ),
        (
            ["--model", "ssd_300_vgg16_atrous_voc", "--pretrained-base", "missing.params"],
            "missing.params: parameter file not found",
        ),
        (["--model", "ssd_demo", "--amp"], "--amp needs a GPU"),
        (
            ["--model", "ssd_demo", "--resume", "nowhere/ckpt-000000001.json"],
            "nowhere/ckpt-000000001.json: checkpoint not found",
        ),
    ],
)
def test_bad_arguments_give_one_line(sample_dir, tmp_path, extra, message):
    proc = run_cli(
        "scripts/train.py",
        "--train",
        str(sample_dir / "train.rec"),
        "--out",
        str(tmp_path / "x"),
        *extra,
    )
    assert_one_line_error(proc, message)


@pytest.mark.parametrize("missing", ["network", "gluoncv"])
def test_gluoncv_base_without_network_or_gluoncv_is_one_line(sample_dir, tmp_path, missing):
    """--pretrained-base gluoncv without a reachable model store, or without gluoncv (not a
    dependency of the library; a fake gluoncv on PYTHONPATH stands in for its absence)."""
    if missing == "network":
        env = dict(os.environ, MXNET_GLUON_REPO="http://127.0.0.1:9/", MXNET_HOME=str(tmp_path))
        expected = "error: --pretrained-base gluoncv: could not fetch vgg16_atrous"
    else:
        fake = tmp_path / "fake" / "gluoncv"
        fake.mkdir(parents=True)
        (fake / "__init__.py").write_text("raise ImportError('gluoncv removed by the test')\n")
        env = dict(os.environ, PYTHONPATH=str(tmp_path / "fake"))
        expected = "error: --pretrained-base gluoncv needs the gluoncv package"
    argv = ["--model", "ssd_300_vgg16_atrous_voc", "--train", str(sample_dir / "train.rec")]
    argv += ["--pretrained-base", "gluoncv", "--out", str(tmp_path / "x")]
    proc = run_cli("scripts/train.py", *argv, env=env)
    assert_one_line_error(proc)
    assert proc.stderr.strip().splitlines()[-1].startswith(expected)


def test_existing_run_needs_resume_and_matching_settings(sample_dir, tmp_path):
    out = tmp_path / "r"
    assert train_cli(sample_dir, out, epochs=1).returncode == 0
    again = train_cli(sample_dir, out, epochs=1)
    assert again.returncode == 1 and "holds checkpoints of an earlier run" in again.stderr
    other = run_cli(
        "scripts/train.py",
        "--model",
        "ssd_demo",
        "--train",
        str(sample_dir / "train.rec"),
        "--batch-size",
        "4",
        "--resume",
        "--out",
        str(out),
    )
    assert other.returncode == 1
    assert "written by a run with batch_size=8, this run has batch_size=4" in other.stderr


def test_resume_with_changed_settings(sample_dir, tmp_path):
    """The optimizer state in a checkpoint belongs to its --optimizer / --momentum / --wd: a
    resume that changes them is refused, naming them, before anything is written. A changed
    --epochs (or --lr, --warmup-epochs, --lr-steps) is honoured: the run installs the lr
    schedule of the new values (drops at 16 and 20 of 24 steps, not the old 8 and 10). The
    previous config.json goes to config-history.jsonl."""
    out = tmp_path / "sched"
    assert train_cli(sample_dir, out, epochs=1).returncode == 0
    config = (out / "config.json").read_text()
    changed = run_cli(*train_argv(sample_dir, out, "--resume", "--optimizer", "adam", epochs=1))
    assert_one_line_error(
        changed,
        "ckpt-000000012.json: written by a run with --optimizer sgd; this run has --optimizer adam",
    )
    assert (out / "config.json").read_text() == config
    longer = train_cli(sample_dir, out, "--resume", epochs=2)
    assert longer.returncode == 0, longer.stderr[-2000:]
    assert "lr schedule rebuilt for --epochs 2 (the checkpoint's: --epochs 1)" in longer.stdout
    lr = {r["step"]: r["lr"] for r in read_jsonl(out / "metrics.jsonl") if r["type"] == "train"}
    base = 0.02 * 8 / 32
    assert lr[16] == pytest.approx(base) and lr[20] == pytest.approx(base / 10)
    assert lr[24] == pytest.approx(base / 100)
    history = read_jsonl(out / "config-history.jsonl")
    assert [h["epochs"] for h in history] == [1]
    assert json.load(open(out / "config.json"))["lr_drop_iterations"] == [16, 20]


def test_validation_file_with_other_classes_is_refused(sample_dir, tmp_path):
    val = tmp_path / "val"
    for suffix in (".rec", ".idx", ".lst"):
        (tmp_path / ("val" + suffix)).write_bytes((sample_dir / ("test" + suffix)).read_bytes())
    (tmp_path / "val.classes.txt").write_text("circle\nsquare\ntriangle\ncross\n")
    proc = train_cli(sample_dir, tmp_path / "o", "--val", str(val) + ".rec", epochs=1)
    assert_one_line_error(
        proc,
        "--val %s.rec: its classes (circle,square,triangle,cross) are "
        "not the training file's" % val,
    )
    assert not (tmp_path / "o").exists()


def _horovodrun(*argv, probe_dir, timeout=600, hosts="localhost:2"):
    env = dict(
        os.environ, OMP_NUM_THREADS="1", MXNET_CPU_WORKER_NTHREADS="1", HVD_PROBE_DIR=str(probe_dir)
    )
    return run_cli(
        HOROVODRUN, "-np", "2", "-H", hosts, sys.executable, *argv, env=env, timeout=timeout
    )


def _record_ids(rec, labels):
    """Row numbers in the .lst (= file order) of the images behind iterator label rows
    (without augmentation an image's objects identify it)."""
    rows = [np.asarray(r[HEADER_WIDTH:], np.float64) for r, _ in records.read_lst(rec)]
    objects = records.split_label(mx.nd.array(labels))[0].asnumpy()
    ids = []
    for o in objects:
        flat = o[o[:, 0] >= 0].ravel()
        match = [
            i for i, r in enumerate(rows) if len(r) == len(flat) and np.abs(r - flat).max() < 1e-4
        ]
        assert len(match) == 1, flat
        ids.append(match[0])
    return ids


@pytest.mark.skipif(not os.path.exists(HOROVODRUN), reason="horovod is not installed")
def test_horovod_two_ranks(sample_dir, tmp_path):
    out, probes = tmp_path / "hvd", tmp_path / "probes"
    probes.mkdir()
    rec, val = str(sample_dir / "train.rec"), str(sample_dir / "test.rec")
    config = dict(
        model="ssd_demo",
        train=rec,
        val=val,
        epochs=3,
        batch_size=8,
        augment="none",
        threads=1,
        ops="builtin",
        lr=0.004,
        log_interval=2,
        out=str(out),
    )
    proc = _horovodrun("tests/workers/hvd_worker.py", json.dumps(config), probe_dir=probes)
    assert proc.returncode == 0, (proc.stdout[-2000:], proc.stderr[-2000:])
    # identical parameters on both ranks (BatchNorm statistics included) and in final.params
    r0, r1 = load(probes / "rank0.params"), load(probes / "rank1.params")
    assert_same_params(r0, r1)
    assert_same_params(load(out / "final.params"), r0)
    # the loss went down
    epochs = [r for r in read_jsonl(out / "metrics.jsonl") if r["type"] == "epoch"]
    assert len(epochs) == 3 and epochs[-1]["loss"] < epochs[0]["loss"]
    # each rank read only its byte-range shard, the same images every epoch
    shards = open_records(rec).shard_sizes(2)
    config = json.load(open(out / "config.json"))
    assert config["world_size"] == 2 and config["effective_lr"] == pytest.approx(0.004 * 16 / 32)
    assert config["iters_per_epoch"] == min(shards) // 8
    starts = [0, shards[0], sum(shards)]
    for rank in (0, 1):
        ids = _record_ids(rec, np.load(probes / ("rank%d.labels.npy" % rank)))
        assert len(ids) == 3 * config["iters_per_epoch"] * 8
        assert all(starts[rank] <= i < starts[rank + 1] for i in ids), rank
    # rank 0 alone wrote into the run directory
    assert json.load(open(probes / "rank1.writes.json")) == []
    assert any("final.params" in w for w in json.load(open(probes / "rank0.writes.json")))
    # the validation mAP gathered over both ranks' shards = one process on the whole set
    gathered = [r for r in read_jsonl(out / "metrics.jsonl") if r["type"] == "val"][-1]
    net = load_network("ssd_demo", str(out / "final.params"), records.read_classes(val), "builtin")
    single = evaluate(
        SSDPredictor(net),
        loader.val_iter(val, 96, 16, threads=1),
        mx.cpu(),
        net.classes,
        progress=False,
    )
    assert gathered["images"] == single["images"] == 32
    assert gathered["mAP"] == pytest.approx(single["mAP"], abs=1e-6)


@pytest.mark.skipif(not os.path.exists(HOROVODRUN), reason="horovod is not installed")
def test_horovod_dead_rank_fails_fast_and_resume_recovers(sample_dir, tmp_path):
    out, probes = tmp_path / "dead", tmp_path / "probes"
    probes.mkdir()
    argv = [
        "scripts/train.py",
        "--model",
        "ssd_demo",
        "--train",
        str(sample_dir / "train.rec"),
        "--epochs",
        "2",
        "--batch-size",
        "8",
        "--threads",
        "1",
        "--ops",
        "builtin",
        "--log-interval",
        "2",
        "--out",
        str(out),
    ]
    t0 = time.time()
    proc = _horovodrun(*argv, "--inject", "kill@8:1", probe_dir=probes)  # rank 1, epoch 2
    # Within minutes even on a loaded machine (the guard is against hanging until the run
    # timeout; on an idle machine the peer stops in seconds).
    assert proc.returncode != 0 and time.time() - t0 < 300
    assert "another worker stopped (Horovod shut down) during epoch 2" in proc.stdout + proc.stderr
    iters = min(open_records(str(sample_dir / "train.rec")).shard_sizes(2)) // 8  # 5 or 6: < 8
    assert sorted(p.name for p in out.glob("ckpt-*.json")) == ["ckpt-%09d.json" % iters]
    again = _horovodrun(*argv, "--resume", probe_dir=probes)
    assert again.returncode == 0, (again.stdout[-2000:], again.stderr[-2000:])
    assert "resuming from" in again.stdout and (out / "final.params").exists()


@pytest.mark.skipif(not os.path.exists(HOROVODRUN), reason="horovod is not installed")
def test_horovod_stop_request_is_agreed_at_the_next_step(sample_dir, tmp_path):
    """SIGTERM on one rank only, after step 3, with progress lines (sync points) far apart:
    every rank stops after step 3 and rank 0 writes that checkpoint, so a stop never waits
    for the next log interval (horovodrun kills its ranks 5 s after forwarding a SIGTERM)."""
    out, probes = tmp_path / "stop", tmp_path / "probes"
    probes.mkdir()
    argv = [
        "scripts/train.py",
        "--model",
        "ssd_demo",
        "--train",
        str(sample_dir / "train.rec"),
        "--epochs",
        "3",
        "--batch-size",
        "4",
        "--threads",
        "1",
        "--ops",
        "builtin",
        "--log-interval",
        "1000",
        "--out",
        str(out),
    ]
    proc = _horovodrun(*argv, "--inject", "term@3:1", probe_dir=probes)
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0  # rank 1 ends with 128 + SIGTERM
    for rank in (0, 1):
        assert (
            "[%d]<stdout>:stopped by SIGTERM at epoch 1 iteration 3; checkpoint %s"
            % (rank, out / "ckpt-000000003.json")
            in output
        ), output[-3000:]
    assert sorted(p.name for p in out.glob("ckpt-*.json")) == ["ckpt-000000003.json"]


@pytest.mark.skipif(not os.path.exists(HOROVODRUN), reason="horovod is not installed")
def test_horovod_resume_needs_the_checkpoint_on_rank_0_only(sample_dir, tmp_path):
    """Two hosts without a shared filesystem, faked as Horovod's own tests do it (``-H
    localhost:1,127.0.0.1:1``), each rank with its own run directory: rank 1's never exists.
    A resume from rank 0's files alone ends with the parameters of an uninterrupted run on
    both ranks (parameters, optimizer state and position come from rank 0)."""
    probes = tmp_path / "probes"
    probes.mkdir()
    rec = str(sample_dir / "train.rec")
    config = dict(model="ssd_demo", train=rec, epochs=2, batch_size=8, threads=1, ops="builtin")
    config.update(lr=0.004, log_interval=2)
    worker = "tests/workers/hvd_worker.py"
    whole = _horovodrun(
        worker, json.dumps(dict(config, out=str(tmp_path / "whole"))), probe_dir=probes
    )
    assert whole.returncode == 0, (whole.stdout[-2000:], whole.stderr[-2000:])
    reference = load(probes / "rank0.params")
    iters = min(open_records(rec).shard_sizes(2)) // 8
    # stopped 2 steps into epoch 2; the checkpoint of epoch 1's end is on rank 0's host only
    split = str(tmp_path / "host{rank}")
    stopped = dict(config, out=split, inject="term@%d" % (iters + 2))
    proc = _horovodrun(worker, json.dumps(stopped), probe_dir=probes)
    assert proc.returncode != 0
    epoch_end = tmp_path / "host0" / ("ckpt-%09d.json" % iters)
    assert epoch_end.exists() and not (tmp_path / "host1").exists()
    for path in list(probes.iterdir()) + list(
        (tmp_path / "host0").glob("ckpt-%09d.*" % (iters + 2))
    ):
        path.unlink()  # resume from the epoch's end (mid-epoch, ranks' BatchNorm statistics differ)
    resumed = dict(config, out=split, resume="auto")
    hosts = "localhost:1,127.0.0.1:1"
    again = _horovodrun(worker, json.dumps(resumed), probe_dir=probes, hosts=hosts)
    assert again.returncode == 0, (again.stdout[-2000:], again.stderr[-2000:])
    assert "[1]<stdout>:resuming from %s" % epoch_end in again.stdout
    assert not (tmp_path / "host1").exists()
    for rank in (0, 1):
        assert_same_params(load(probes / ("rank%d.params" % rank)), reference)
