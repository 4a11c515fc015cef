"""Loading parameter files into a network: our own checkpoints, gluoncv's saved SSD models,
ImageNet bases, and either detector into a network of another class list (fine-tuning), with
one-line errors that name the file and the mismatch."""

import os
import re
from typing import NamedTuple

import mxnet as mx

from ..utils.errors import CheckFailedError, MissingFileError, UserError, last_line
from ..utils.files import atomic_save

# gluoncv structured parameter names -> ours. The two trees differ only in naming.
_GLUONCV_RENAMES = [
    (r"^features\.stages\.5\.0\.", "features.fc6."),
    (r"^features\.stages\.5\.2\.", "features.fc7."),
    (r"^features\.norm4\.scale$", "features.conv4_3_norm.scale"),
    (r"^features\.init_scale$", "features.input_scale"),
    (r"^class_predictors\.(\d+)\.predictor\.", r"cls_heads.\1."),
    (r"^box_predictors\.(\d+)\.predictor\.", r"box_heads.\1."),
]
_GLUONCV_SKIP = re.compile(r"^anchor_generators\.")  # gluoncv stores anchors as constants
# Our class-prediction heads (structured names): the only parameters whose shape depends on
# the class list.
_CLS_HEAD = re.compile(r"^cls_heads\.(\d+)\.(weight|bias)$")


def structured_params(block):
    """{'features.fc6.weight': Parameter, ...}: the names ``save_parameters`` writes, which
    do not depend on the block's prefix. Gluon 1.x has no public accessor for them; this is
    the one place that calls the private one."""
    return block._collect_params_with_prefix()


def device_of(block):
    """The context holding ``block``'s (initialized) parameters."""
    return next(iter(block.collect_params().values())).list_ctx()[0]


def _rename_gluoncv(key):
    for pattern, repl in _GLUONCV_RENAMES:
        if re.search(pattern, key):
            return re.sub(pattern, repl, key)
    return key


def _check_file(filename):
    if not os.path.isfile(filename):
        raise MissingFileError("%s: parameter file not found" % filename)
    if filename.endswith((".states", ".json")):
        raise UserError(
            "%s: a checkpoint's %s file, not its parameters: pass the .params beside it"
            % (filename, os.path.splitext(filename)[1])
        )
    try:
        return mx.nd.load(filename)
    except mx.base.MXNetError as err:
        raise UserError(
            "%s: not an MXNet parameter file (%s)" % (filename, last_line(err))
        ) from None


def _shape_fits(known, shape):
    """Whether an array of ``shape`` fits a parameter of shape ``known`` (0 or -1: a dimension
    Gluon infers at the first forward, such as a conv's input channels)."""
    known = known or ()
    return len(known) == len(shape) and all(k in (0, -1, n) for k, n in zip(known, shape))


def _assign(params, arrays, filename, allow_missing=False):
    """Copy name->array into a structured-name ParameterDict, checking names and shapes."""
    unknown = sorted(set(arrays) - set(params))
    if unknown:
        raise UserError(
            "%s: %d parameters this model does not have, e.g. %s"
            % (filename, len(unknown), unknown[0])
        )
    missing = sorted(set(params) - set(arrays))
    if missing and not allow_missing:
        raise UserError("%s: missing %d parameters, e.g. %s" % (filename, len(missing), missing[0]))
    for name, arr in arrays.items():
        p = params[name]
        if not _shape_fits(p.shape, arr.shape):
            raise UserError(
                "%s: %s has shape %s, the model expects %s (another model or "
                "class count?)" % (filename, name, arr.shape, p.shape)
            )
        p.shape = arr.shape
        # Initializes a deferred parameter with these values (no public API in Gluon 1.x).
        p._load_init(arr, mx.cpu())


def save_parameters(net, path):
    """``net.save_parameters(path)``, complete or absent: written under a temporary name,
    read back, then renamed (MXNet reports a short write with a multi-line error, and a
    failed close not at all). A failure is a one-line CheckFailedError naming ``path``."""

    def save(tmp):
        try:
            net.save_parameters(tmp)
        except mx.base.MXNetError as err:
            raise CheckFailedError(
                "%s: could not be written (%s)" % (path, last_line(err))
            ) from None

    def check(tmp):
        try:
            mx.nd.load(tmp)
        except mx.base.MXNetError as err:
            raise CheckFailedError(
                "%s: written incompletely (%s)" % (path, last_line(err))
            ) from None

    atomic_save(save, path, check)


def _gluoncv_arrays(filename):
    """{our structured name: array} of a file written by gluoncv's SSD ``save_parameters()``
    (its constant anchors left out)."""
    return {
        _rename_gluoncv(k): v
        for k, v in _check_file(filename).items()
        if not _GLUONCV_SKIP.search(k)
    }


def load_gluoncv_parameters(net, filename):
    """Load a file written by gluoncv's ``save_parameters()`` of the same-named SSD model."""
    _assign(structured_params(net), _gluoncv_arrays(filename), filename)
    return net


def load_base_parameters(net, filename):
    """Load ImageNet weights into ``net.features``; accepts gluoncv's ``vgg16_atrous`` file
    (``stages.*``, ``norm4.scale``) or our own feature names. Heads and extras not in the file
    stay un-initialized."""
    arrays = {
        _rename_gluoncv("features." + k)[len("features.") :]: v
        for k, v in _check_file(filename).items()
    }
    _assign(structured_params(net.features), arrays, filename, allow_missing=True)
    return net


def load_parameters(net, filename):
    """Load a file written by ``net.save_parameters()`` (our checkpoints), with errors that
    name the file and the mismatch."""
    _assign(structured_params(net), _check_file(filename), filename)
    return net


class ClassReuse(NamedTuple):
    """What ``load_parameters_for_classes`` did with each class name."""

    reused: tuple  # the network's classes whose head rows came from the file
    new: tuple  # the network's classes not in the file: left at their fresh initialization
    dropped: tuple  # the file's classes the network does not have

    def __str__(self):
        def names(group):
            return ", ".join(group) if group else "none"

        return "classes reused from the file: %s; new: %s; not kept: %s" % (
            names(self.reused),
            names(self.new),
            names(self.dropped),
        )


def _fresh_data(p, shape):
    """``p``'s data as NumPy: its current values if it is initialized, else those of its own
    initializer, run now on the CPU with ``shape`` (heads: Xavier weights, zero biases). A
    deferred parameter (``net.initialize()`` before any forward) gets the same initializer
    its first forward would have run."""
    try:
        return p.data().asnumpy()
    except RuntimeError:  # never initialized, or deferred until the input channels are known
        p.shape = shape
        p.initialize(ctx=mx.cpu())
        return p.data().asnumpy()


def load_parameters_for_classes(net, filename, source_classes, gluoncv=False):
    """Fine-tuning start: load a detector trained for ``source_classes`` into ``net``, the
    same preset built for another class list (``net.classes``), like gluoncv's
    ``reset_class(classes, reuse_weights=...)``.

    ``filename`` is our ``.params`` (a checkpoint or ``final``), or with ``gluoncv=True`` a
    file of gluoncv's same-named model. Our files do not store class names, so
    ``source_classes`` (the file's foreground classes, in its order) is required.

    Every parameter except the class heads' is loaded as is. Class head k is a 3x3 conv with
    A * (C + 1) output channels (A anchors per cell, C classes), anchor-major: channel
    ``a * (C + 1) + c`` scores class c (0: background) for anchor a, the layout ``SSD``
    reshapes to (B, N, C + 1). For every anchor, the network's background row and the rows
    of classes also in ``source_classes`` (matched by name) are copied from the file's
    positions of those classes; the other rows keep their initialization: the network's
    own values if it was initialized, else the heads' initializer run here. Parameters end
    on the CPU (``net`` must not be initialized on another device).

    Returns a ``ClassReuse`` (``str()`` of it is a one-line summary). A file of another
    architecture, or one whose class heads do not fit ``len(source_classes)`` classes, is a
    one-line UserError naming the file and the first mismatching parameter.
    """
    source = tuple(source_classes)
    if not source or len(set(source)) != len(source):
        raise UserError(
            "%s: source_classes must be the file's distinct class names, got %r"
            % (filename, source)
        )
    target = tuple(net.classes)
    arrays = _gluoncv_arrays(filename) if gluoncv else _check_file(filename)
    params = structured_params(net)

    # Everything outside the class heads: the same names and shapes as the file's.
    _assign(
        {k: p for k, p in params.items() if not _CLS_HEAD.search(k)},
        {k: v for k, v in arrays.items() if not _CLS_HEAD.search(k)},
        filename,
    )
    head_names = sorted(k for k in params if _CLS_HEAD.search(k))
    unmatched = sorted(set(head_names) ^ {k for k in arrays if _CLS_HEAD.search(k)})
    if unmatched:
        raise UserError(
            "%s: class heads differ from this model's, e.g. %s (another model?)"
            % (filename, unmatched[0])
        )

    # (target row, source row) per anchor; row 0 is background in both.
    rows = [(0, 0)] + [(t + 1, source.index(c) + 1) for t, c in enumerate(target) if c in source]
    for name in head_names:
        p, arr = params[name], arrays[name]
        anchors = net.anchor_specs[int(_CLS_HEAD.search(name).group(1))].num_anchors
        if arr.shape[0] != anchors * (len(source) + 1):
            raise UserError(
                "%s: %s has %d output channels, not %d anchors x (%d source classes + 1) "
                "(another model, or not the file's source_classes?)"
                % (filename, name, arr.shape[0], anchors, len(source))
            )
        shape = (anchors * (len(target) + 1),) + arr.shape[1:]
        if not _shape_fits(p.shape, shape):
            raise UserError(
                "%s: %s has shape %s, the model expects %s for %d classes (another model?)"
                % (filename, name, arr.shape, p.shape, len(target))
            )
        # Split the channel axis into (anchor, class row) to copy whole rows of all anchors.
        new = _fresh_data(p, shape).reshape((anchors, len(target) + 1) + arr.shape[1:])
        old = arr.asnumpy().reshape((anchors, len(source) + 1) + arr.shape[1:])
        for t, s in rows:
            new[:, t] = old[:, s]
        p.set_data(mx.nd.array(new.reshape(shape), dtype=arr.dtype))
    return ClassReuse(
        reused=tuple(c for c in target if c in source),
        new=tuple(c for c in target if c not in source),
        dropped=tuple(c for c in source if c not in target),
    )


def pretrained_base_file(spec):
    """``--pretrained-base`` value -> a local .params path: a path is returned as is;
    ``gluoncv`` fetches gluoncv's ImageNet ``vgg16_atrous`` (cached under ~/.mxnet/models;
    needs the network on first use, and gluoncv installed: it is not a dependency of this
    package)."""
    if spec != "gluoncv":
        return spec
    try:
        from gluoncv.model_zoo.model_store import get_model_file
    except ImportError:
        raise CheckFailedError(
            "--pretrained-base gluoncv needs the gluoncv package (pip install "
            "gluoncv==0.10.5.post0), or pass the path of a vgg16_atrous "
            ".params file"
        ) from None
    try:
        return get_model_file("vgg16_atrous", tag=True)
    except Exception as err:  # noqa: BLE001 - any download failure gets the same advice
        reason = last_line(err)
        raise CheckFailedError(
            "--pretrained-base gluoncv: could not fetch vgg16_atrous from "
            "gluoncv's model store (%s); download it where the network is "
            "reachable and pass the .params path" % reason
        ) from None
