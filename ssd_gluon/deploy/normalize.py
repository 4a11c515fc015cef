"""The one image normalizer of the deployed graphs: RGB pixels 0-255 in, the network's
(pixel - mean) / std out, with ``constants``' statistics. The MXNet symbol export and the
ONNX export both put this block in front of the network."""

import mxnet as mx
from mxnet.gluon import HybridBlock, nn

from ..constants import MEAN_RGB, STD_RGB
from ..model.predictor import SSDPredictor
from ..model.weights import device_of
from ..utils.errors import UserError

INPUT_DTYPES = ("float32", "uint8")


class ImageNormalizer(HybridBlock):
    """(B, 3, H, W) RGB pixels 0-255 (float32, or uint8 cast inside) -> (pixel - mean) / std."""

    def __init__(self, input_dtype="float32", **kwargs):
        super().__init__(**kwargs)
        if input_dtype not in INPUT_DTYPES:
            raise UserError("input dtype must be one of %s, not %r" % (INPUT_DTYPES, input_dtype))
        self.input_dtype = input_dtype
        with self.name_scope():
            self.mean = self.params.get_constant(
                "mean", mx.nd.array(MEAN_RGB).reshape((1, 3, 1, 1))
            )
            self.std = self.params.get_constant("std", mx.nd.array(STD_RGB).reshape((1, 3, 1, 1)))

    def hybrid_forward(self, F, x, mean, std):
        if self.input_dtype != "float32":
            x = F.cast(x, dtype="float32")
        return F.broadcast_div(F.broadcast_sub(x, mean), std)


def deploy_block(net, input_dtype="float32", **predictor_kwargs):
    """HybridBlock taking raw RGB pixels (B, 3, H, W) 0-255 (``input_dtype``) and returning
    ``(ids (B,K,1), scores (B,K,1), bboxes (B,K,4))`` in input pixels: the normalizer, the
    network and ``SSDPredictor(net, **predictor_kwargs)``, on the network's device."""
    normalizer = ImageNormalizer(input_dtype, prefix="normalizer_")
    # Constants only: the network keeps its weights.
    normalizer.initialize(ctx=device_of(net))
    block = nn.HybridSequential(prefix="")
    block.add(normalizer, SSDPredictor(net, **predictor_kwargs))
    return block
