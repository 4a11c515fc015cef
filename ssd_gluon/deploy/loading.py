"""One loader for "a trained detector", whatever form it has: a checkpoint of ours (or a
gluoncv parameter file) with its preset name, or an export of ``symbol.export_detector``.
Evaluation and detection both use it, with one input contract."""

import os
from typing import Callable, NamedTuple, Union

import mxnet as mx

from ..model.zoo import load_network
from ..utils.errors import UserError
from .normalize import deploy_block
from .symbol import check_input_size, load_exported


class Detector(NamedTuple):
    """A loaded detector. ``block(pixels)`` takes float32 RGB pixels 0-255 of shape
    (B, 3, data_shape, data_shape) on the detector's context and returns ``ids (B,K,1)``,
    ``scores (B,K,1)``, ``boxes (B,K,4)`` in input pixels, rows padded with -1."""

    block: Callable
    classes: list
    data_shape: int
    source: Union[str, dict]  # the export's absolute prefix, or the checkpoint's description


def load_detector(
    symbol=None,
    model=None,
    params=None,
    classes=None,
    ops="auto",
    gluoncv=False,
    ctx=None,
    data_shape=None,
):
    """The detector of an export (``symbol`` = its PREFIX) or of a checkpoint (``model`` and
    ``params``; ``gluoncv=True`` for gluoncv's parameter files); exactly one of the two.

    ``classes`` names the classes (default: the export's, or the preset's); ``data_shape``
    runs a checkpoint at another input side (an export runs only at its own: asking for
    another is an error); ``ctx`` defaults to the CPU.
    """
    ctx = ctx or mx.cpu()
    if symbol:
        if model or params:
            raise UserError("give either --symbol or --model/--params, not both")
        block, meta = load_exported(symbol, ctx)
        check_input_size(meta, symbol, data_shape)
        if classes and len(classes) != len(meta["classes"]):
            raise UserError(
                "%s-meta.json: the export detects %d classes, %d were named (%s)"
                % (symbol, len(meta["classes"]), len(classes), ",".join(classes))
            )
        if meta["input_dtype"] == "uint8":
            block = _through_uint8(block)
        return Detector(
            block, list(classes or meta["classes"]), meta["data_shape"], os.path.abspath(symbol)
        )
    if not (model and params):
        raise UserError("give --model and --params (or --symbol PREFIX of an export)")
    net = load_network(model, params, classes, ops, gluoncv, ctx)
    block = deploy_block(net)
    block.hybridize(static_alloc=True)
    return Detector(
        block,
        list(net.classes),
        data_shape or net.base_size,
        dict(model=model, params=os.path.abspath(params), gluoncv=gluoncv),
    )


def _through_uint8(block):
    """Feeds float32 pixels to a graph exported with uint8 input (rounded, clipped)."""

    def run(pixels):
        return block(pixels.round().clip(0, 255).astype("uint8"))

    return run
