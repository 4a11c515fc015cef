"""The package as a whole: its public API, and the import graph that states its architecture
(deploy/engine/packing -> model/data/evaluation -> ops/constants/utils, never upwards)."""

import ast
import os
import subprocess
import sys

import pytest

from conftest import ROOT

PACKAGE = os.path.join(ROOT, "ssd_gluon")
# What each part may import from the package (besides itself).
ALLOWED = {
    "constants": set(),
    "utils": set(),
    "ops": {"utils"},
    "evaluation": {"utils"},
    "model": {"constants", "ops", "utils"},
    "data": {"constants", "utils"},
    "packing": {"constants", "utils", "data"},
    "engine": {"constants", "ops", "utils", "model", "data", "evaluation"},
    "deploy": {"constants", "ops", "utils", "model", "data"},
}
# ``model`` and ``data`` share a tier; these two edges cross it, each into a module that
# imports nothing above constants/utils: the presets' default class lists, and the IoU the
# sample generator places its shapes with.
SIDEWAYS = {
    ("ssd_gluon.model.zoo", "ssd_gluon.data.classes"),
    ("ssd_gluon.data.synthetic", "ssd_gluon.model.box_coder"),
}


def _modules():
    """{dotted module name: path} of every module of the package."""
    out = {}
    for folder, _, files in os.walk(PACKAGE):
        for name in files:
            if name.endswith(".py"):
                path = os.path.join(folder, name)
                rel = os.path.relpath(path, ROOT)[:-3].replace(os.sep, ".")
                out[rel[: -len(".__init__")] if rel.endswith(".__init__") else rel] = path
    return out


def _imports(module, path):
    """The ssd_gluon modules (or packages) ``module`` imports, resolved to dotted names."""
    package = module if path.endswith("__init__.py") else module.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(open(path).read())):
        if isinstance(node, ast.ImportFrom):
            if node.level:  # relative: up from this module's package, then down
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module
            found |= {"%s.%s" % (target, a.name) for a in node.names} | {target}
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
    return {m for m in found if m and m.split(".")[0] == "ssd_gluon"}


def _part(module):
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else None


def test_imports_run_downwards_only():
    modules = _modules()
    wrong = []
    for module, path in modules.items():
        part = _part(module)
        if part is None:  # ssd_gluon/__init__.py re-exports lazily, by name
            continue
        for target in _imports(module, path):
            if target not in modules or (module, target) in SIDEWAYS:
                continue
            if _part(target) not in ALLOWED[part] | {part, None}:
                wrong.append("%s imports %s" % (module, target))
    assert not wrong, wrong
    assert set(ALLOWED) == {_part(m) for m in modules if _part(m)}


def test_subpackages_are_one_level_and_small():
    for entry in sorted(os.listdir(PACKAGE)):
        folder = os.path.join(PACKAGE, entry)
        if not os.path.isdir(folder) or entry.startswith(("_", ".")):
            continue
        files = [f for f in os.listdir(folder) if f.endswith(".py") and f != "__init__.py"]
        assert 2 <= len(files) <= 9, (entry, files)
        assert not [
            d
            for d in os.listdir(folder)
            if os.path.isdir(os.path.join(folder, d)) and d != "__pycache__"
        ], entry


def test_public_api():
    import ssd_gluon

    for name in ssd_gluon.__all__:
        assert getattr(ssd_gluon, name) is not None, name
    assert {
        "get_model",
        "list_models",
        "load_gluoncv_parameters",
        "load_parameters",
        "SSD",
        "SSDPredictor",
        "VOCMApMetric",
        "ops",
        "__version__",
    } <= set(ssd_gluon.__all__)
    assert "ssd_demo" in ssd_gluon.list_models()
    with pytest.raises(AttributeError):
        ssd_gluon.no_such_name


@pytest.mark.parametrize(
    "module",
    [
        "ssd_gluon",
        "ssd_gluon.constants",
        "ssd_gluon.ops",
        "ssd_gluon.deploy.postprocess",
        "ssd_gluon.utils.cli",
    ],
)
def test_light_modules_import_without_mxnet(module):
    """The NumPy deployment path runs where MXNet cannot be imported; the package itself and
    the CLI helpers do not load it either (the tools parse their arguments first)."""
    code = "import sys; sys.modules['mxnet'] = None; import %s" % module
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-1000:]
