"""VGG16-atrous feature extractor of SSD (Liu et al., section 3 and Fig. 2).

VGG16 with pool5 changed to 3x3 stride 1, fc6 turned into a 3x3 convolution with dilation 6
(the "atrous" trick) and fc7 into a 1x1 convolution, conv4_3 L2-normalized with a learned
per-channel scale (ParseNet), then the extra layers that halve the resolution.
"""

import mxnet as mx
from mxnet.gluon import HybridBlock, nn

from ..constants import STD_RGB
from ..utils.errors import UserError


def caffe_input_scale():
    """(1, 3, 1, 1) factors that turn the network's input (pixel - mean) / std back into the
    mean-subtracted 0-255 pixels that Caffe-converted ImageNet VGG weights expect. Computed as
    gluoncv computes its ``init_scale`` (std in 0-1 units times 255, in float32), so the
    constant is bit-identical to gluoncv's."""
    return (mx.nd.array([s / 255 for s in STD_RGB]) * 255).reshape((1, 3, 1, 1))


def _conv(channels, kernel, stride=1, pad=0, dilation=1):
    return nn.Conv2D(
        channels,
        kernel,
        strides=stride,
        padding=pad,
        dilation=dilation,
        weight_initializer=mx.init.Xavier(rnd_type="gaussian", factor_type="out", magnitude=2),
        bias_initializer="zeros",
    )


def _conv_relu_stack(specs, batch_norm=False):
    """HybridSequential of conv (+ BatchNorm) + relu; specs are (channels, kernel, stride, pad)."""
    seq = nn.HybridSequential(prefix="")
    for channels, kernel, stride, pad in specs:
        seq.add(_conv(channels, kernel, stride, pad))
        if batch_norm:
            seq.add(nn.BatchNorm())
        seq.add(nn.Activation("relu"))
    return seq


class L2Norm(HybridBlock):
    """Channel-wise L2 normalization with a learnable scale per channel.

    (B, C, H, W) -> (B, C, H, W); the scale starts at ``initial`` (20 in the paper).
    """

    def __init__(self, channels, initial=20.0, eps=1e-5, **kwargs):
        super().__init__(**kwargs)
        self._eps = eps
        with self.name_scope():
            self.scale = self.params.get(
                "scale", shape=(1, channels, 1, 1), init=mx.init.Constant(initial)
            )

    def hybrid_forward(self, F, x, scale):
        return F.broadcast_mul(F.L2Normalization(x, mode="channel", eps=self._eps), scale)


class VGGAtrous(HybridBlock):
    """VGG-style base plus SSD extra layers.

    Parameters
    ----------
    layers : convolutions per stage (VGG16: 2, 2, 3, 3, 3)
    filters : channels per stage (VGG16: 64, 128, 256, 512, 512)
    fc_channels : channels of fc6/fc7 (1024)
    fc_dilation : dilation of the 3x3 fc6 (6)
    extras : per extra block, a list of (channels, kernel, stride, pad) convolutions
    batch_norm : BatchNorm after every convolution of the stages and extras (for training
        from scratch; the paper's model has none)
    caffe_scale : multiply the input by std*255, for weights converted from Caffe VGG
    l2norm : L2-normalize conv4_3 with a learned scale (the paper; needed when conv4_3 and
        fc7 activations differ in scale, redundant with BatchNorm)

    Input (B, 3, H, W) normalized images; output a list of source feature maps:
    L2-normalized conv4_3, fc7, then one per extra block.
    """

    def __init__(
        self,
        layers,
        filters,
        fc_channels,
        fc_dilation,
        extras,
        batch_norm=False,
        caffe_scale=True,
        l2norm=True,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if len(layers) != 5 or len(filters) != 5:
            raise UserError("VGG has 5 convolution stages")
        scale = caffe_input_scale() if caffe_scale else mx.nd.ones((1, 3, 1, 1))
        with self.name_scope():
            self.input_scale = self.params.get_constant("input_scale", scale)
            self.stages = nn.HybridSequential()
            for n, channels in zip(layers, filters):
                self.stages.add(_conv_relu_stack([(channels, 3, 1, 1)] * n, batch_norm))
            self.fc6 = _conv(fc_channels, 3, pad=fc_dilation, dilation=fc_dilation)
            self.fc7 = _conv(fc_channels, 1)
            self.conv4_3_norm = L2Norm(filters[3], initial=20.0) if l2norm else None
            self.extras = nn.HybridSequential()
            for block in extras:
                self.extras.add(_conv_relu_stack(block, batch_norm))

    def hybrid_forward(self, F, x, input_scale):
        x = F.broadcast_mul(x, input_scale)
        for stage in self.stages[:3]:
            x = _pool2x2(F, stage(x))
        x = self.stages[3](x)
        sources = [self.conv4_3_norm(x) if self.conv4_3_norm is not None else x]
        x = self.stages[4](_pool2x2(F, x))
        # pool5: 3x3 stride 1 keeps the resolution for the dilated fc6.
        x = F.Pooling(x, pool_type="max", kernel=(3, 3), stride=(1, 1), pad=(1, 1))
        x = F.relu(self.fc7(F.relu(self.fc6(x))))
        sources.append(x)
        for block in self.extras:
            x = block(x)
            sources.append(x)
        return sources


def _pool2x2(F, x):
    # 'full' (ceil) rounding: 75 -> 38 as in the Caffe model, giving the 38x38 conv4_3 map.
    return F.Pooling(x, pool_type="max", kernel=(2, 2), stride=(2, 2), pooling_convention="full")


# Extra layers (channels, kernel, stride, pad) of the paper's SSD300 and SSD512.
EXTRAS_300 = [
    [(256, 1, 1, 0), (512, 3, 2, 1)],  # conv8_2: 19 -> 10
    [(128, 1, 1, 0), (256, 3, 2, 1)],  # conv9_2: 10 -> 5
    [(128, 1, 1, 0), (256, 3, 1, 0)],  # conv10_2: 5 -> 3
    [(128, 1, 1, 0), (256, 3, 1, 0)],  # conv11_2: 3 -> 1
]
EXTRAS_512 = [
    [(256, 1, 1, 0), (512, 3, 2, 1)],  # 32 -> 16
    [(128, 1, 1, 0), (256, 3, 2, 1)],  # 16 -> 8
    [(128, 1, 1, 0), (256, 3, 2, 1)],  # 8 -> 4
    [(128, 1, 1, 0), (256, 3, 2, 1)],  # 4 -> 2
    [(128, 1, 1, 0), (256, 4, 1, 1)],  # 2 -> 1
]


def vgg16_atrous(extras):
    """The VGG16-atrous base of the paper with the given extra layers."""
    return VGGAtrous(
        layers=(2, 2, 3, 3, 3),
        filters=(64, 128, 256, 512, 512),
        fc_channels=1024,
        fc_dilation=6,
        extras=extras,
    )
