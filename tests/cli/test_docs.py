"""The README and docs/ stay true: every command they show names a script that exists and
flags it accepts, every file path they cite exists, every ``ssd_gluon.*`` name resolves."""

import glob
import importlib
import os
import re
import subprocess
import sys

import pytest

from conftest import ROOT

DOCS = ["README.md", "ops/README.md"] + sorted(
    os.path.relpath(p, ROOT) for p in glob.glob(os.path.join(ROOT, "docs", "*.md"))
)
SCRIPT = re.compile(r"(?:^|\s)(?:\S*python\S*\s+)((?:scripts|data|benchmarks)/\w+\.py)(.*)")


def _text(doc):
    with open(os.path.join(ROOT, doc)) as f:
        return f.read()


def _commands(doc):
    """(script, argument text) of every shell command in ``doc``'s code blocks, with
    backslash continuations joined."""
    blocks = re.findall(r"```(?:bash|sh)?\n(.*?)```", _text(doc), re.S)
    lines = "\n".join(blocks).replace("\\\n", " ").splitlines()
    return [m.groups() for m in map(SCRIPT.search, lines) if m]


ALL_COMMANDS = sorted({(doc,) + c for doc in DOCS for c in _commands(doc)})


@pytest.fixture(scope="module")
def help_texts():
    """``--help`` of every script the docs run, once each."""
    texts = {}
    for script in sorted({c[1] for c in ALL_COMMANDS}):
        proc = subprocess.run(
            [sys.executable, script, "--help"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert proc.returncode == 0, (script, proc.stderr[-1000:])
        texts[script] = proc.stdout
    return texts


def test_docs_show_commands():
    assert {c[0] for c in ALL_COMMANDS} >= {
        "README.md",
        "docs/training.md",
        "docs/data.md",
        "docs/evaluation.md",
        "docs/deployment.md",
    }


@pytest.mark.parametrize("doc, script, args", ALL_COMMANDS)
def test_command_flags_exist(help_texts, doc, script, args):
    flags = re.findall(r"(?<![\w-])(--[a-z][a-z0-9-]*)", args)
    unknown = [f for f in flags if not re.search(r"(?<![\w-])%s\b" % f, help_texts[script])]
    assert not unknown, "%s: %s %s: unknown flags %s" % (doc, script, args, unknown)


@pytest.mark.parametrize("doc", DOCS)
def test_cited_paths_and_names_exist(doc):
    text = _text(doc)
    paths = set(
        re.findall(
            r"`((?:ssd_gluon|scripts|data|benchmarks|tests|ops|docs)/[\w/.]+"
            r"\.(?:py|md|sh|h|cc|cu|cuh))`",
            text,
        )
    )
    missing = [p for p in paths if not os.path.exists(os.path.join(ROOT, p))]
    assert not missing, (doc, missing)
    for target in sorted(set(re.findall(r"make (\w+)", text))):
        assert re.search(r"^%s:" % target, _text("Makefile"), re.M), (doc, target)
    for name in sorted(set(re.findall(r"`(ssd_gluon(?:\.\w+)+)", text))):
        _resolve(name)


def _resolve(dotted):
    """Import the longest module prefix of ``dotted`` and get the rest as attributes."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for attr in parts[cut:]:
            obj = getattr(obj, attr)
        return obj
    raise ImportError(dotted)
