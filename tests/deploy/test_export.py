"""Export of the detector and its reload in a fresh process that imports only mxnet."""

import os

import mxnet as mx
import numpy as np
import pytest
from mxnet import autograd

from ssd_gluon import get_model
from ssd_gluon.deploy.normalize import deploy_block
from ssd_gluon.deploy.symbol import check_input_size, export_detector, load_exported
from ssd_gluon.deploy.verify import verify_export

from conftest import assert_one_line_error, run_cli


@pytest.fixture
def trained_like_params(tmp_path):
    """An initialized ssd_demo whose class bias favours foreground, so detections exist."""
    mx.random.seed(0)
    net = get_model("ssd_demo", ops="builtin")
    net.initialize(mx.init.Xavier())
    with autograd.predict_mode():
        net(mx.nd.zeros((1, 3, 96, 96)))
    path = str(tmp_path / "demo.params")
    net.save_parameters(path)
    return net, path


def test_export_round_trip_in_fresh_process(trained_like_params, tmp_path):
    net, _ = trained_like_params
    prefix = str(tmp_path / "exp" / "ssd_demo")
    sym, params, _ = export_detector(net, prefix, 96, verify=False)
    assert os.path.isfile(sym) and os.path.isfile(params)
    assert sorted(os.listdir(tmp_path / "exp")) == [
        "ssd_demo-0000.params",
        "ssd_demo-meta.json",
        "ssd_demo-symbol.json",
    ]
    n = verify_export(net, prefix, 96)
    assert n > 0
    # And the Gluon deploy block equals a SymbolBlock import in this process too.
    block = mx.gluon.SymbolBlock.imports(sym, ["data"], params)
    x = mx.nd.array(np.random.RandomState(1).uniform(0, 255, (2, 3, 96, 96)))
    for a, b in zip(block(x), deploy_block(net)(x)):
        np.testing.assert_allclose(a.asnumpy(), b.asnumpy(), rtol=1e-4, atol=1e-4)


def test_export_cli(trained_like_params, tmp_path):
    _, params = trained_like_params
    prefix = tmp_path / "cli" / "demo"
    proc = run_cli(
        "scripts/export_symbol.py", "--model", "ssd_demo", "--params", params, "--out", str(prefix)
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "verified in a fresh process" in proc.stdout
    assert (tmp_path / "cli" / "demo-symbol.json").exists()


def test_export_cli_wrong_params_is_one_line_error(tmp_path):
    net = get_model("ssd_demo", classes=["a", "b", "c"], ops="builtin")
    net.initialize()
    net(mx.nd.zeros((1, 3, 96, 96)))
    path = str(tmp_path / "three.params")
    net.save_parameters(path)
    proc = run_cli(
        "scripts/export_symbol.py",
        "--model",
        "ssd_demo",
        "--params",
        path,
        "--out",
        str(tmp_path / "x"),
    )
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines()[-1].startswith("error: ")
    assert "three.params" in proc.stderr and "Traceback" not in proc.stderr
    assert not list(tmp_path.glob("x-*"))


def test_export_appears_only_when_verified(trained_like_params, tmp_path):
    """An export whose check in the fresh process fails leaves no file behind (the fresh
    process finds a broken mxnet first on its PYTHONPATH) and is a one-line error."""
    _, params = trained_like_params
    fake = tmp_path / "fake"
    fake.mkdir()
    (fake / "mxnet.py").write_text("raise ImportError('mxnet broken by the test')\n")
    out = tmp_path / "exp"
    argv = ["--model", "ssd_demo", "--params", params, "--out", str(out / "demo")]
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    # The exporting process sets PYTHONPATH after its own start: only the process it launches
    # for the check imports the broken mxnet.
    code = (
        "import os, runpy, sys; os.environ['PYTHONPATH'] = %r; "
        "sys.argv = ['export_symbol.py'] + %r; "
        "runpy.run_path('scripts/export_symbol.py', run_name='__main__')" % (str(fake), argv)
    )
    proc = run_cli("-c", code, env=env)
    assert_one_line_error(
        proc, "demo-symbol.json: reloading in a fresh process failed", "mxnet broken by the test"
    )
    assert os.listdir(out) == []


def test_uint8_input_export_equals_float32(trained_like_params, tmp_path):
    net, _ = trained_like_params
    prefix = str(tmp_path / "u8" / "ssd_demo")
    export_detector(net, prefix, 96, input_dtype="uint8", verify=False)
    assert verify_export(net, prefix, 96, input_dtype="uint8") > 0
    block, meta = load_exported(prefix)
    assert meta["input_dtype"] == "uint8" and meta["data_shape"] == 96
    assert meta["classes"] == list(net.classes) and meta["ops"] == "builtin"
    pixels = np.random.RandomState(2).randint(0, 256, (2, 3, 96, 96))
    got = block(mx.nd.array(pixels, dtype="uint8"))
    want = deploy_block(net)(mx.nd.array(pixels, dtype="float32"))
    for a, b in zip(got, want):
        np.testing.assert_allclose(a.asnumpy(), b.asnumpy(), rtol=1e-4, atol=1e-4)


def test_exported_files_errors(trained_like_params, tmp_path):
    net, _ = trained_like_params
    prefix = str(tmp_path / "e" / "m")
    export_detector(net, prefix, 96, verify=False)
    _, meta = load_exported(prefix)
    with pytest.raises(ValueError, match=r"m-symbol.json: exported for 96x96 input, not 128x128"):
        check_input_size(meta, prefix, 128)
    os.remove(prefix + "-meta.json")
    with pytest.raises(FileNotFoundError, match=r"m-meta.json: exported file not found"):
        load_exported(prefix)


def test_exports_named_by_a_file_and_damaged_exports(trained_like_params, tmp_path):
    """The -symbol.json given for its PREFIX is understood; a truncated -0000.params is
    named as such; fewer class names than the export detects is refused."""
    from ssd_gluon import load_detector
    from ssd_gluon.utils.errors import UserError

    net, _ = trained_like_params
    prefix = str(tmp_path / "d" / "m")
    export_detector(net, prefix, 96, verify=False)
    block, meta = load_exported(prefix + "-symbol.json")
    assert meta["data_shape"] == 96
    with pytest.raises(UserError, match="the export detects 4 classes, 2 were named"):
        load_detector(symbol=prefix, classes=["a", "b"])
    params = prefix + "-0000.params"
    with open(params, "rb") as f:
        head = f.read(2000)
    with open(params, "wb") as f:
        f.write(head)
    with pytest.raises(UserError, match=r"m-0000.params: the exported parameters do not load"):
        load_exported(prefix)


def test_checkpoint_side_files_given_as_params(tmp_path):
    from ssd_gluon import get_model, load_parameters
    from ssd_gluon.utils.errors import UserError

    states = tmp_path / "ckpt-000000012.states"
    states.write_bytes(b"whatever")
    net = get_model("ssd_demo", ops="builtin")
    with pytest.raises(
        UserError,
        match=r"ckpt-000000012.states: a checkpoint's .states file, "
        r"not its parameters: pass the .params beside it",
    ):
        load_parameters(net, str(states))
