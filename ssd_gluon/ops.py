"""Selects the implementation of the SSD operators: MXNet's contrib built-ins or our own
library built from ``ops/``.

``impl`` values accepted everywhere a model or block takes ``ops=`` (``IMPLS``):

* ``'builtin'`` - ``contrib.MultiBoxPrior`` / ``MultiBoxTarget`` (the detection output is then
  composed of built-ins by ``SSDPredictor``);
* ``'custom'``  - ``ssd_multibox_prior`` / ``ssd_multibox_target`` / ``ssd_multibox_detection``
  from the compiled library (an error if it is not built);
* ``'auto'``    - custom when the library is built, else builtin.

MXNet is imported only when the library is loaded: the operator functions receive ``F``
(``mx.nd`` or ``mx.sym``) from the block that calls them, and the command-line tools read
``IMPLS`` for their ``--ops`` choices before importing MXNet.
"""

import os

from .utils.errors import UserError

IMPLS = ("auto", "custom", "builtin")
LIBRARY_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_lib", "libssd_ops.so")

_loaded = False


class OpsNotBuiltError(UserError, RuntimeError):
    """The custom operator library was requested but has not been compiled."""


def is_built():
    """True when the compiled operator library exists next to this package."""
    return os.path.isfile(LIBRARY_PATH)


def load():
    """Load the custom operator library once per process (MXNet refuses repeated loads)."""
    global _loaded
    if _loaded:
        return LIBRARY_PATH
    if not is_built():
        raise OpsNotBuiltError(
            "ssd_gluon ops library not built: %s is missing (build it with "
            "`python ops/build.py` or `pip install -e .`, or use ops='builtin')" % LIBRARY_PATH
        )
    import mxnet as mx

    mx.library.load(LIBRARY_PATH, verbose=False)
    _loaded = True
    return LIBRARY_PATH


def resolve(impl="auto"):
    """Map an ``ops=`` value to ``'custom'`` or ``'builtin'`` (loading the library if needed)."""
    if impl not in IMPLS:
        raise UserError("ops must be one of %s, got %r" % (", ".join(IMPLS), impl))
    if impl == "builtin" or (impl == "auto" and not is_built()):
        return "builtin"
    load()
    return "custom"


def multibox_prior(F, impl, x, **attrs):
    """Anchors (1, H*W*A, 4) for feature map ``x`` (B, C, H, W); attributes as MultiBoxPrior."""
    op = F.ssd_multibox_prior if impl == "custom" else F.contrib.MultiBoxPrior
    return op(x, **attrs)


def multibox_target(F, impl, anchors, labels, cls_preds, **attrs):
    """(loc_target (B,N*4), loc_mask (B,N*4), cls_target (B,N)); attributes as MultiBoxTarget."""
    op = F.ssd_multibox_target if impl == "custom" else F.contrib.MultiBoxTarget
    return op(anchors, labels, cls_preds, **attrs)


def multibox_detection(F, cls_prob, loc_pred, anchors, **attrs):
    """The library's detection output from ``cls_prob (B, C+1, N)``, ``loc_pred (B, N*4)``,
    ``anchors (1, N, 4)``: MultiBoxDetection's best-class rows (B, N, 6), or with
    ``per_class=True`` the paper's per-class rows (B, keep_topk, 6). The built-in path has no
    per-class mode; ``SSDPredictor`` composes it from built-ins instead."""
    return F.ssd_multibox_detection(cls_prob, loc_pred, anchors, **attrs)
