"""Loading parameter files into a network: our own checkpoints, gluoncv's saved SSD models
and ImageNet bases, with one-line errors that name the file and the mismatch."""

import os
import re

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
        known = p.shape or ()
        if len(known) != arr.ndim or any(k not in (0, -1, n) for k, n in zip(known, arr.shape)):
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


def load_gluoncv_parameters(net, filename):
    """Load a file written by gluoncv's ``save_parameters()`` of the same-named SSD model."""
    arrays = {
        _rename_gluoncv(k): v
        for k, v in _check_file(filename).items()
        if not _GLUONCV_SKIP.search(k)
    }
    _assign(structured_params(net), arrays, filename)
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
