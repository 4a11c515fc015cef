"""Anchors: counts of the presets and values/order against a NumPy transcription of the
paper's default-box formula, through MultiBoxPrior."""

import math

import mxnet as mx
import numpy as np
import pytest

from ssd_gluon import get_model
from ssd_gluon.model.anchors import AnchorGenerator, AnchorSpec, anchor_specs


def reference_anchors(spec, fmap, base):
    """(fmap*fmap*A, 4) corner boxes normalized by base, in MultiBoxPrior order."""
    s_min, s_extra = spec.size_min, math.sqrt(spec.size_min * spec.size_max)
    shapes = [(s_min, s_min), (s_extra, s_extra)]
    shapes += [(s_min * math.sqrt(r), s_min / math.sqrt(r)) for r in spec.ratios[1:]]
    out = []
    for i in range(fmap):
        for j in range(fmap):
            cx, cy = (j + 0.5) * spec.step, (i + 0.5) * spec.step
            for w, h in shapes:
                out.append([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2])
    return np.array(out) / base


@pytest.mark.parametrize(
    "name,size,count",
    [
        ("ssd_300_vgg16_atrous_voc", 300, 8732),
        ("ssd_512_vgg16_atrous_voc", 512, 24564),
        ("ssd_demo", 96, 776),
    ],
)
def test_preset_anchor_counts(name, size, count):
    net = get_model(name, ops="builtin")
    net.initialize()
    cls, box, anchors = net(mx.nd.zeros((1, 3, size, size)))
    assert anchors.shape == (1, count, 4)
    assert cls.shape == (1, count, len(net.classes) + 1) and box.shape == (1, count, 4)


def test_ssd300_anchor_values_match_paper_formula():
    net = get_model("ssd_300_vgg16_atrous_voc", ops="builtin")
    net.initialize()
    _, _, anchors = net(mx.nd.zeros((1, 3, 300, 300)))
    fmaps = [38, 19, 10, 5, 3, 1]
    ref = np.concatenate([reference_anchors(s, f, 300) for s, f in zip(net.anchor_specs, fmaps)])
    np.testing.assert_allclose(anchors[0].asnumpy(), ref, atol=2e-6)


@pytest.mark.parametrize("ratios", [(1,), (1, 2, 0.5), (1, 2, 0.5, 3, 1.0 / 3)])
def test_generator_against_reference(ratios):
    spec = AnchorSpec(40, 90, ratios, 16)
    gen = AnchorGenerator(spec, base_size=160, ops="builtin")
    out = gen(mx.nd.zeros((2, 8, 10, 10)))
    assert out.shape == (1, 10 * 10 * spec.num_anchors, 4)
    np.testing.assert_allclose(out[0].asnumpy(), reference_anchors(spec, 10, 160), atol=2e-6)


def test_anchor_specs_validates_lengths():
    with pytest.raises(ValueError, match="len\\(sizes\\)"):
        anchor_specs([1, 2], [(1,), (1,)], [8, 16])
    with pytest.raises(ValueError, match="first anchor ratio must be 1"):
        AnchorGenerator(AnchorSpec(10, 20, (2, 1), 8), base_size=100, ops="builtin")
