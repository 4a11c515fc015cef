import os
import resource
import signal
import subprocess
import sys
import warnings

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
warnings.filterwarnings("ignore", category=DeprecationWarning)


def run_cli(*argv, timeout=600, env=None):
    """Run a repository CLI with this interpreter; returns CompletedProcess (text)."""
    return subprocess.run(
        [sys.executable] + list(argv),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )


def limit_file_size(limit):
    """preexec_fn for a child process whose files may not grow past ``limit`` bytes: writes
    then fail with EFBIG as on a full disk (SIGXFSZ ignored, so the write fails instead of
    killing the child)."""

    def apply():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return apply


def assert_one_line_error(proc, *needles):
    """Exit status 1, no traceback, and a last stderr line 'error: ...' holding ``needles``."""
    assert proc.returncode == 1, (proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ")
    for n in needles:
        assert n in last


@pytest.fixture(scope="session")
def sample_dir(tmp_path_factory):
    """A small packed sample (96 train / 32 test images), shared by the session's tests."""
    out = tmp_path_factory.mktemp("sample")
    proc = run_cli(
        "data/make_sample.py",
        "--out",
        str(out),
        "--num-train",
        "96",
        "--num-test",
        "32",
        "--seed",
        "3",
    )
    assert proc.returncode == 0, proc.stderr
    return out


@pytest.fixture(scope="session")
def fitted_demo(sample_dir, tmp_path_factory):
    """The run directory of ssd_demo fitted to the sample's 96 training images (no
    augmentation, 30 epochs: it learns them nearly by heart, so that what a later step keeps
    or loses of its accuracy is plain to see); its weights are ``final.params``."""
    out = tmp_path_factory.mktemp("fitted") / "demo"
    argv = ["--model", "ssd_demo", "--train", str(sample_dir / "train.rec"), "--epochs", "30"]
    argv += ["--batch-size", "16", "--augment", "none", "--threads", "1", "--ops", "builtin"]
    proc = run_cli("scripts/train.py", *argv, "--log-interval", "100", "--out", str(out))
    assert proc.returncode == 0, proc.stderr[-2000:]
    return out
