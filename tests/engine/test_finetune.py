"""Fine-tuning to new classes: a detector trained on the sample's four classes, restarted on a
file of two of them (``scripts/train.py --init-from``), keeps those classes' accuracy through
the class-head reset; a network started from scratch has none."""

import mxnet as mx
import pytest

from ssd_gluon import SSDPredictor, get_model
from ssd_gluon.data import loader
from ssd_gluon.data.classes import SAMPLE_CLASSES
from ssd_gluon.engine.evaluate import evaluate
from ssd_gluon.model.weights import load_parameters_for_classes

from conftest import run_cli

SUBSET = ["cross", "circle"]  # two of the sample's classes, in another order


def ap(net, rec):
    """Per-class VOC07 AP of ``net`` over ``rec``."""
    result = evaluate(
        SSDPredictor(net),
        loader.val_iter(rec, 96, 16, threads=1),
        mx.cpu(),
        net.classes,
        progress=False,
    )
    return result["per_class"]


def test_shared_classes_keep_their_accuracy_through_the_head_reset(
    sample_dir, fitted_demo, tmp_path
):
    subset = tmp_path / "subset"
    proc = run_cli(
        "data/pack_voc.py",
        "--voc-root",
        str(sample_dir),
        "--sets",
        "sample-train",
        "--classes",
        ",".join(SUBSET),
        "--out",
        str(subset),
        "--workers",
        "0",
        "--no-progress",
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    rec = str(subset) + ".rec"
    source = get_model("ssd_demo", ops="builtin")
    source.load_parameters(str(fitted_demo / "final.params"))
    before = ap(source, str(sample_dir / "train.rec"))
    assert min(before[c] for c in SUBSET) > 0.9
    # loaded for the new class list: the shared classes score as before
    net = get_model("ssd_demo", classes=SUBSET, ops="builtin")
    reuse = load_parameters_for_classes(net, str(fitted_demo / "final.params"), SAMPLE_CLASSES)
    assert reuse.reused == tuple(SUBSET) and set(reuse.dropped) == {"rectangle", "triangle"}
    after = ap(net, rec)
    for name in SUBSET:
        assert after[name] == pytest.approx(before[name], abs=0.05), name
    fresh = get_model("ssd_demo", classes=SUBSET, ops="builtin")
    fresh.initialize()
    assert max(ap(fresh, rec).values()) < 0.2
    # the command line: two epochs of fine-tuning from the fitted_demo detector, at a small lr
    out = tmp_path / "tuned"
    proc = run_cli(
        "scripts/train.py",
        "--model",
        "ssd_demo",
        "--train",
        rec,
        "--init-from",
        str(fitted_demo / "final.params"),
        "--epochs",
        "2",
        "--warmup-epochs",
        "0",
        "--lr",
        "0.0001",
        "--batch-size",
        "16",
        "--augment",
        "none",
        "--threads",
        "1",
        "--ops",
        "builtin",
        "--out",
        str(out),
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (
        "initialized from %s: classes reused from the file: cross, circle; new: none; "
        "not kept: rectangle, triangle" % (fitted_demo / "final.params") in proc.stdout
    )
    tuned = get_model("ssd_demo", classes=SUBSET, ops="builtin")
    tuned.load_parameters(str(out / "final.params"))
    assert min(ap(tuned, rec).values()) > 0.8
