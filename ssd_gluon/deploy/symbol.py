"""Export the detector (normalization + network + decoding + NMS) as MXNet symbol + params
that load without this package, checked in a fresh process before the files appear, and
load such an export back."""

import json
import os
import tempfile

import mxnet as mx

from .. import ops
from ..utils.errors import CheckFailedError, MissingFileError, UserError, last_line
from ..utils.files import TMP_MARK, output_folder, write_json
from .normalize import deploy_block
from .verify import verify_export

# The files of an export, in the order they are put in place (the description last: an export
# is complete once PREFIX-meta.json exists).
EXPORT_SUFFIXES = ("-0000.params", "-symbol.json", "-meta.json")


def export_detector(
    net, prefix, data_shape, input_dtype="float32", verify=True, **predictor_kwargs
):
    """Write ``PREFIX-symbol.json``, ``PREFIX-0000.params`` and ``PREFIX-meta.json`` (input
    size and dtype, class names, operators) for a fixed (data_shape x data_shape) input
    named ``data``, with the operators the network was built with (``net.ops``: 'builtin'
    gives a graph of MXNet built-ins only, 'custom' one that needs our library). The files
    are written in a temporary folder beside PREFIX and, with ``verify``, reloaded in a fresh
    process and compared with the Gluon detector
    (``verify.verify_export``) before they move into place: they appear complete and checked,
    or not at all. Returns (symbol file, params file, detections compared or None)."""
    impl = ops.resolve(net.ops)
    block = deploy_block(net, input_dtype, **predictor_kwargs)
    block.hybridize()
    block(mx.nd.zeros((1, 3, data_shape, data_shape), dtype=input_dtype))
    out_dir = output_folder(os.path.dirname(os.path.abspath(prefix)))
    meta = dict(
        data_shape=data_shape,
        input_dtype=input_dtype,
        classes=list(net.classes),
        ops=impl,
        input="RGB pixels 0-255, (B, 3, %d, %d), %s" % (data_shape, data_shape, input_dtype),
        outputs="ids (B,K,1), scores (B,K,1), boxes (B,K,4) in input pixels; -1 rows are padding",
        predictor=predictor_kwargs,
    )
    check = None
    if verify:
        library = ops.LIBRARY_PATH if impl == "custom" else None
        check = lambda staged: verify_export(  # noqa: E731
            net, staged, data_shape, library=library, input_dtype=input_dtype, **predictor_kwargs
        )
    detections = write_export(block, prefix, out_dir, meta, check)
    return prefix + "-symbol.json", prefix + "-0000.params", detections


def write_export(block, prefix, out_dir, meta, check=None):
    """Export the hybridized ``block`` as ``PREFIX-symbol.json`` and ``PREFIX-0000.params``
    with ``meta`` as ``PREFIX-meta.json``, staged in a temporary folder inside ``out_dir``;
    ``check(staged prefix)`` runs on the staged files (its errors name PREFIX) and only then
    they move into place, the description last. Returns what ``check`` returned, or None."""
    name = os.path.basename(prefix)
    with tempfile.TemporaryDirectory(prefix=name + TMP_MARK, dir=out_dir) as tmp:
        staged = os.path.join(tmp, name)
        try:
            block.export(staged, epoch=0)
        except mx.base.MXNetError as err:
            raise CheckFailedError(
                "%s: could not be written (%s)" % (prefix, last_line(err))
            ) from None
        write_json(staged + "-meta.json", meta)
        result = None
        if check is not None:
            try:
                result = check(staged)
            except CheckFailedError as err:  # name the files the user asked for
                raise CheckFailedError(str(err).replace(staged, prefix)) from None
        for suffix in EXPORT_SUFFIXES:  # the description last
            try:
                os.replace(staged + suffix, prefix + suffix)
            except OSError as err:
                raise CheckFailedError(
                    "%s%s: could not be written (%s)" % (prefix, suffix, err.strerror)
                ) from None
    return result


def load_exported(prefix, ctx=None):
    """(SymbolBlock, meta) of files written by ``export_detector``; loads the operator
    library when the graph needs it. One-line errors name the missing or broken file. The
    name of one of the files (``PREFIX-symbol.json``) is taken for its PREFIX."""
    for suffix in EXPORT_SUFFIXES:
        if prefix.endswith(suffix):
            prefix = prefix[: -len(suffix)]
    for suffix in EXPORT_SUFFIXES:
        if not os.path.isfile(prefix + suffix):
            raise MissingFileError("%s%s: exported file not found" % (prefix, suffix))
    with open(prefix + "-meta.json") as f:
        try:
            meta = json.load(f)
        except ValueError as err:
            raise UserError(
                "%s-meta.json: not an export description (%s)" % (prefix, err)
            ) from None
    if meta.get("ops") == "custom":
        ops.load()
    try:
        mx.nd.load(prefix + "-0000.params")
    except mx.base.MXNetError as err:
        raise UserError(
            "%s-0000.params: the exported parameters do not load (%s); export again"
            % (prefix, last_line(err))
        ) from None
    try:
        block = mx.gluon.SymbolBlock.imports(
            prefix + "-symbol.json", ["data"], prefix + "-0000.params", ctx=ctx or mx.cpu()
        )
    except (mx.base.MXNetError, ValueError) as err:
        raise UserError(
            "%s-symbol.json: cannot load the exported graph (%s)" % (prefix, last_line(err))
        ) from None
    return block, meta


def check_input_size(meta, prefix, data_shape):
    """An exported graph runs at the size it was exported for."""
    if data_shape is not None and data_shape != meta["data_shape"]:
        raise UserError(
            "%s-symbol.json: exported for %dx%d input, not %dx%d (export again "
            "with --data-shape %d)"
            % (prefix, meta["data_shape"], meta["data_shape"], data_shape, data_shape, data_shape)
        )
