"""Checkpoints and the files of a run are complete or absent: a write that fails (a full
disk) is a one-line error that leaves nothing behind, what interrupted writes left is
cleaned at the next start, and a damaged newest checkpoint is skipped on resume."""

import os
import subprocess
import sys

import pytest
from test_train import train_argv, train_cli

from conftest import ROOT, assert_one_line_error, limit_file_size


def _files(out):
    return sorted(p.name for p in out.iterdir()) if out.exists() else []


def test_failed_checkpoint_write_is_an_error_and_leaves_nothing(sample_dir, tmp_path):
    """ssd_demo's parameters are 1.9 MB: with files limited to 1 MB the first checkpoint
    cannot be written. The run stops with one line naming the file, exit 1, and neither the
    checkpoint's files nor temporaries are left (config.json and metrics.jsonl are small)."""
    out = tmp_path / "full"
    proc = subprocess.run(
        [sys.executable, *train_argv(sample_dir, out, epochs=1)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        preexec_fn=limit_file_size(1 << 20),
    )
    assert_one_line_error(proc, "ckpt-000000012.params: could not be written")
    assert "final parameters" not in proc.stdout
    names = _files(out)
    assert not [n for n in names if n.startswith("ckpt-") or ".tmp-" in n], names
    assert "final.params" not in names and "config.json" in names


@pytest.fixture
def small_disk(tmp_path):
    """A 3 MB tmpfs (root only, and where mounting is allowed); skipped otherwise."""
    mount = tmp_path / "disk"
    mount.mkdir()
    proc = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        pytest.skip("cannot mount a small tmpfs here (%s)" % (proc.stderr.strip() or "no mount"))
    yield mount
    subprocess.run(["umount", str(mount)], capture_output=True)


def test_disk_full_during_a_checkpoint(sample_dir, small_disk):
    """A real full disk: the checkpoint's .params (1.9 MB) fits in 3 MB, its .states (SGD
    momentum, 1.9 MB) does not. The run stops naming the .states file, and the .params it had
    already written is removed with it."""
    out = small_disk / "run"
    proc = train_cli(sample_dir, out, epochs=1)
    assert_one_line_error(
        proc, "ckpt-000000012.states: could not be written", "No space left on device"
    )
    assert not [n for n in _files(out) if n.startswith("ckpt-") or ".tmp-" in n], _files(out)


def test_next_start_removes_what_interrupted_writes_left(sample_dir, tmp_path):
    out = tmp_path / "left"
    assert train_cli(sample_dir, out, epochs=1).returncode == 0
    (out / "ckpt-000000099.params").write_bytes(b"half a file")  # its .json never came
    (out / "ckpt-000000099.states").write_bytes(b"half a file")
    (out / "final.params.tmp-12345").write_bytes(b"a killed writer's")
    proc = train_cli(sample_dir, out, "--resume", epochs=2)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "removed 3 file(s) left by interrupted writes" in proc.stdout
    names = _files(out)
    assert "ckpt-000000099.params" not in names and not [n for n in names if ".tmp-" in n]


def test_damaged_newest_checkpoint_is_skipped_on_resume(sample_dir, tmp_path):
    out = tmp_path / "dmg"
    assert train_cli(sample_dir, out, "--keep", "2", epochs=2).returncode == 0
    newest = out / "ckpt-000000024.params"
    newest.write_bytes(newest.read_bytes()[:1000])  # truncated
    proc = train_cli(sample_dir, out, "--resume", "--keep", "2", epochs=3)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "ckpt-000000024.json: ckpt-000000024.params does not load" in proc.stderr
    assert "resuming from %s" % (out / "ckpt-000000012.json") in proc.stdout
    names = _files(out)
    # renamed aside, not counted among the two kept
    assert {"ckpt-000000024.params.damaged", "ckpt-000000024.json.damaged"} <= set(names)
    assert [n for n in names if n.startswith("ckpt-") and n.endswith(".json")] == [
        "ckpt-000000024.json",
        "ckpt-000000036.json",
    ]


def test_damaged_states_named_in_one_line(sample_dir, tmp_path):
    out = tmp_path / "st"
    assert train_cli(sample_dir, out, epochs=1).returncode == 0
    (out / "ckpt-000000012.states").write_bytes(b"\x80\x04not a pickle")
    proc = train_cli(sample_dir, out, "--resume", str(out / "ckpt-000000012.json"), epochs=2)
    assert_one_line_error(proc, "ckpt-000000012.json: ckpt-000000012.states does not load")
    assert os.path.exists(out / "ckpt-000000012.states")  # an explicit one is kept
