"""The benchmarks run end to end (times are not asserted: speed lives in `make bench`)."""

import json
import os
import sys

from conftest import ROOT, run_cli

# benchmarks/ is a folder of scripts beside the package, not an installed module.
sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
from common import markdown_table  # noqa: E402


def test_bench_ops_writes_rows_and_table(tmp_path):
    out = tmp_path / "bench" / "ops"
    proc = run_cli("scripts/bench.py", "ops", "--repeats", "1", "--out", str(out))
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads((tmp_path / "bench" / "ops.json").read_text())
    rows = report["results"]["ops"]
    assert [r[0].split(":")[0].split(",")[0] for r in rows] == [
        "prior",
        "target",
        "detection per-class",
        "detection best-class",
        "detection per-class",
        "detection best-class",
    ]
    assert all(r[1] > 0 and r[2] > 0 for r in rows)
    assert "ours / peer" in (tmp_path / "bench" / "ops.md").read_text()
    assert "machine:" in proc.stdout


def test_bench_train_rows(tmp_path):
    """The training benchmark on 16 images, batch 2, a step or two per case: one row per
    preset (ours and the gluoncv-style step, both positive), then the Horovod rows."""
    horovod = os.path.exists(os.path.join(os.path.dirname(sys.executable), "horovodrun"))
    out = tmp_path / "train.json"
    proc = run_cli(
        "benchmarks/training.py",
        "run",
        "--num-images",
        "16",
        "--batch-size",
        "2",
        "--repeats",
        "2",
        "--rounds",
        "1",
        "--profile",
        "1",
        "--ssd300",
        "1,1,1",
        "--hvd-steps",
        "2",
        "--json",
        str(out),
        *([] if horovod else ["--no-horovod"]),
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    rows = json.loads(out.read_text())
    assert [r[0].split(",")[0] for r in rows[:2]] == [
        "train ssd_demo 96x96",
        "train ssd_300_vgg16_atrous_voc 300x300",
    ]
    for case, ours, peer, peer_name, unit in rows[:2]:
        assert ours > 0 and peer > 0 and peer_name == "gluoncv-style step" and unit == "images/s"
    if horovod:
        starts = [
            "horovod ssd_demo batch 2/rank, 1 process",
            "horovod ssd_demo batch 2/rank, 2 processes",
            "horovod scaling efficiency img/s(2 proc) / img/s(1 proc)",
        ]
        assert [r[0][: len(s)] for r, s in zip(rows[2:], starts)] == starts
        assert [r[4] for r in rows[2:]] == ["images/s", "images/s", "ratio"]
        assert all(r[1] > 0 and r[2] is None for r in rows[2:])
    else:
        assert len(rows) == 2
    assert "gluoncv-style step" in markdown_table(rows)
    assert "ours/peer" in proc.stdout and "profile" in proc.stdout


def test_bench_lists_its_suites():
    proc = run_cli("scripts/bench.py", "--help")
    assert proc.returncode == 0 and "{data,infer,ops,train,all}" in proc.stdout


def test_bench_infer_rows():
    """The inference benchmark at batch 1, one timed call per side: our two operator sets,
    the ONNX graph and the int8 export, each against gluoncv's model with the same weights."""
    from inference import bench_infer

    lines = []
    rows = bench_infer(repeats=1, log=lines.append, batches=(1,))
    assert [r[0] for r in rows] == [
        "ssd_300_vgg16_atrous_voc b1: " + side
        for side in (
            "ours, custom ops",
            "ours, builtin ops",
            "ONNX end to end (onnxruntime)",
            "int8 (MXNet oneDNN)",
        )
    ]
    assert all(r[1] > 0 and r[2] > 0 and r[3] == "gluoncv" for r in rows)
    assert any("int8 export calibrated" in line for line in lines)
