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
