"""The SSD network: a feature extractor, 3x3 class/box heads on each source layer and
in-graph anchors."""

import mxnet as mx
from mxnet.gluon import HybridBlock, nn

from ..utils.errors import UserError
from .anchors import AnchorGenerator


def _head(channels):
    return nn.Conv2D(
        channels,
        3,
        padding=1,
        weight_initializer=mx.init.Xavier(magnitude=2),
        bias_initializer="zeros",
    )


class SSD(HybridBlock):
    """Single Shot MultiBox Detector.

    Parameters
    ----------
    features : HybridBlock returning a list of source feature maps
    anchor_specs : one AnchorSpec per source layer
    classes : foreground class names (C of them; class 0 of the heads is background)
    base_size : input side (pixels) that anchor sizes and steps refer to
    ops : 'auto' | 'custom' | 'builtin', the MultiBoxPrior implementation

    ``net(x)`` with x (B, 3, H, W) returns, in training and inference alike,
    ``cls_preds (B, N, C+1)`` logits, ``box_preds (B, N, 4)`` encoded offsets and
    ``anchors (1, N, 4)`` corner format normalized to [0, 1].
    """

    def __init__(self, features, anchor_specs, classes, base_size, ops="auto", **kwargs):
        super().__init__(**kwargs)
        self.classes = tuple(classes)
        self.base_size = base_size
        self.anchor_specs = tuple(anchor_specs)
        self.ops = ops
        with self.name_scope():
            self.features = features
            self.cls_heads = nn.HybridSequential()
            self.box_heads = nn.HybridSequential()
            self.anchor_generators = nn.HybridSequential()
            for spec in self.anchor_specs:
                self.cls_heads.add(_head(spec.num_anchors * (len(self.classes) + 1)))
                self.box_heads.add(_head(spec.num_anchors * 4))
                self.anchor_generators.add(AnchorGenerator(spec, base_size, ops=ops))

    @property
    def num_classes(self):
        """Number of foreground classes C."""
        return len(self.classes)

    def hybrid_forward(self, F, x):
        sources = self.features(x)
        if len(sources) != len(self.anchor_specs):
            raise UserError(
                "features gave %d source layers for %d anchor specs"
                % (len(sources), len(self.anchor_specs))
            )
        # NCHW -> NHWC before flattening puts the A anchors of one cell next to each other,
        # the order MultiBoxPrior emits them in.
        cls_preds = [
            F.flatten(F.transpose(head(s), (0, 2, 3, 1)))
            for s, head in zip(sources, self.cls_heads)
        ]
        box_preds = [
            F.flatten(F.transpose(head(s), (0, 2, 3, 1)))
            for s, head in zip(sources, self.box_heads)
        ]
        anchors = [gen(s) for s, gen in zip(sources, self.anchor_generators)]
        cls_preds = F.concat(*cls_preds, dim=1).reshape((0, -1, self.num_classes + 1))
        box_preds = F.concat(*box_preds, dim=1).reshape((0, -1, 4))
        anchors = F.concat(*anchors, dim=1)
        return cls_preds, box_preds, anchors
