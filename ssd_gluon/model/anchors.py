"""Default boxes (anchors) of SSD, generated inside the graph with MultiBoxPrior.

Anchors come out in corner format ``(xmin, ymin, xmax, ymax)`` normalized to [0, 1] of the
input image, in the order MultiBoxPrior and the paper's Caffe model use: for each feature
map cell (row-major), the box of size ``s_k`` and ratio 1, the box of size
``sqrt(s_k * s_{k+1})`` and ratio 1, then size ``s_k`` with each other ratio.
"""

import math
from typing import NamedTuple, Sequence

from mxnet.gluon import HybridBlock

from .. import ops as _ops
from ..utils.errors import UserError


class AnchorSpec(NamedTuple):
    """Anchors of one source layer, in input pixels of the model's base size."""

    size_min: float  # s_k
    size_max: float  # s_{k+1}; the extra ratio-1 box has size sqrt(s_k * s_{k+1})
    ratios: Sequence[float]  # first must be 1
    step: float  # distance between neighbouring anchor centers

    @property
    def num_anchors(self):
        """Anchors per feature-map cell: two of ratio 1, one per other ratio."""
        return len(self.ratios) + 1


def anchor_specs(sizes, ratios, steps):
    """Zip the paper's per-layer lists into AnchorSpecs.

    ``sizes`` has one more entry than layers (s_1 .. s_{m+1}); ``ratios`` and ``steps`` one
    per layer.
    """
    if len(sizes) != len(ratios) + 1 or len(ratios) != len(steps):
        raise UserError(
            "need len(sizes) == len(ratios) + 1 == len(steps) + 1, got %d, %d, %d"
            % (len(sizes), len(ratios), len(steps))
        )
    return [
        AnchorSpec(sizes[i], sizes[i + 1], tuple(ratios[i]), steps[i]) for i in range(len(steps))
    ]


class AnchorGenerator(HybridBlock):
    """MultiBoxPrior for one source layer.

    Input: feature map (B, C, H, W). Output: anchors (1, H*W*A, 4), corner format, normalized
    by ``base_size`` (the input side the pixel sizes and steps refer to).
    """

    def __init__(self, spec: AnchorSpec, base_size, ops="auto", **kwargs):
        super().__init__(**kwargs)
        if spec.ratios[0] != 1:
            raise UserError("the first anchor ratio must be 1, got %r" % (spec.ratios[0],))
        self.spec = spec
        self._impl = _ops.resolve(ops)
        size_extra = math.sqrt(spec.size_min * spec.size_max)
        self._attrs = dict(
            sizes=(spec.size_min / base_size, size_extra / base_size),
            ratios=tuple(float(r) for r in spec.ratios),
            steps=(spec.step / base_size, spec.step / base_size),
            offsets=(0.5, 0.5),
            clip=False,
        )

    def hybrid_forward(self, F, x):
        return _ops.multibox_prior(F, self._impl, x, **self._attrs)
