"""Fine-tuning start: a detector's parameters loaded into the same preset with another class
list, the shared classes' head rows moved to their new positions (gluoncv's ``reset_class``)."""

import mxnet as mx
import numpy as np
import pytest
from mxnet import autograd

from ssd_gluon import get_model
from ssd_gluon.data.classes import SAMPLE_CLASSES
from ssd_gluon.model.weights import load_parameters_for_classes, structured_params

NEW_CLASSES = ("triangle", "circle", "newthing")  # a subset in another order, plus a new one


@pytest.fixture
def demo_file(tmp_path):
    """(source network, its saved .params) of ssd_demo with the sample classes."""
    mx.random.seed(3)
    src = get_model("ssd_demo", ops="builtin")
    assert src.classes == SAMPLE_CLASSES
    src.initialize()
    src(mx.nd.zeros((1, 3, 96, 96)))
    path = str(tmp_path / "demo.params")
    src.save_parameters(path)
    return src, path


def _outputs(net, x):
    with autograd.predict_mode():  # BatchNorm on its running statistics
        return [o.asnumpy() for o in net(x)]


@pytest.mark.parametrize("initialized", [False, True])
def test_shared_classes_keep_their_scores(demo_file, initialized):
    src, path = demo_file
    net = get_model("ssd_demo", classes=NEW_CLASSES, ops="builtin")
    if initialized:  # deferred until the first forward: the heads' initializer still runs
        net.initialize()
    summary = load_parameters_for_classes(net, path, SAMPLE_CLASSES)
    assert summary.reused == ("triangle", "circle") and summary.new == ("newthing",)
    assert summary.dropped == ("rectangle", "cross")
    assert "newthing" in str(summary) and "\n" not in str(summary)

    x = mx.nd.random.uniform(-1, 1, shape=(2, 3, 96, 96))
    s_cls, s_box, s_anc = _outputs(src, x)
    cls, box, anc = _outputs(net, x)
    assert cls.shape == s_cls.shape[:-1] + (len(NEW_CLASSES) + 1,)
    # Raw logits (B, N, C+1): background, triangle, circle are the source's 0, 3, 1. A conv
    # with another channel count may sum in another order: equal up to float rounding.
    tol = 1e-5 * np.abs(s_cls).max()
    np.testing.assert_allclose(cls[..., [0, 1, 2]], s_cls[..., [0, 3, 1]], rtol=0, atol=tol)
    np.testing.assert_array_equal(box, s_box)
    np.testing.assert_array_equal(anc, s_anc)
    # the new class is freshly initialized: none of the source's channels
    for c in range(s_cls.shape[-1]):
        assert np.abs(cls[..., 3] - s_cls[..., c]).max() > 100 * tol
    bias = net.cls_heads[0].bias.data().asnumpy().reshape(-1, len(NEW_CLASSES) + 1)
    assert (bias[:, 3] == 0).all()  # the heads' zero bias initializer


def test_kept_classes_of_an_initialized_network_are_left_alone(demo_file):
    """Rows of new classes keep the values the network had (here after a forward)."""
    _, path = demo_file
    net = get_model("ssd_demo", classes=NEW_CLASSES, ops="builtin")
    net.initialize()
    net(mx.nd.zeros((1, 3, 96, 96)))
    before = net.cls_heads[1].weight.data().asnumpy()
    load_parameters_for_classes(net, path, SAMPLE_CLASSES)
    after = net.cls_heads[1].weight.data().asnumpy()
    k = len(NEW_CLASSES) + 1
    np.testing.assert_array_equal(after[3::k], before[3::k])  # newthing's rows, every anchor
    assert not np.array_equal(after[1::k], before[1::k])  # triangle's came from the file


def test_another_architecture_or_class_list_is_a_one_line_error(demo_file, tmp_path):
    _, path = demo_file
    net = get_model("ssd_300_vgg16_atrous_voc", classes=NEW_CLASSES, ops="builtin")
    with pytest.raises(ValueError, match=r"demo\.params: .*parameters this model does not have"):
        load_parameters_for_classes(net, path, SAMPLE_CLASSES)
    # same names, another shape outside the class heads: box_heads.0 with twice the channels
    other = get_model("ssd_demo", ops="builtin")
    other.initialize()
    other(mx.nd.zeros((1, 3, 96, 96)))
    weights = {k: v.data() for k, v in structured_params(other).items()}
    name = "box_heads.0.weight"
    weights[name] = mx.nd.zeros((weights[name].shape[0] * 2,) + weights[name].shape[1:])
    bad = str(tmp_path / "other.params")
    mx.nd.save(bad, weights)
    with pytest.raises(ValueError, match=r"other\.params: box_heads\.0\.weight has shape") as info:
        load_parameters_for_classes(get_model("ssd_demo", classes=NEW_CLASSES), bad, SAMPLE_CLASSES)
    assert "\n" not in str(info.value)
    # source_classes that are not the file's: the heads have another channel count
    with pytest.raises(ValueError, match=r"demo\.params: cls_heads\.0\.\w+ has 20 output channels"):
        load_parameters_for_classes(
            get_model("ssd_demo", classes=NEW_CLASSES), path, ("circle", "triangle")
        )


def test_gluoncv_file_matches_gluoncvs_reset_class(tmp_path):
    """A gluoncv VOC SSD300 file, loaded for two VOC classes and a new one, scores the shared
    classes as gluoncv's own ``reset_class(..., reuse_weights=...)`` of that model does."""
    gluoncv = pytest.importorskip("gluoncv")
    mx.random.seed(5)
    ref = gluoncv.model_zoo.get_model("ssd_300_vgg16_atrous_voc", pretrained_base=False)
    ref.initialize(mx.init.Xavier(magnitude=2))
    x = mx.nd.random.normal(shape=(1, 3, 300, 300))
    ref(x)
    path = str(tmp_path / "gluoncv.params")
    ref.save_parameters(path)
    source = tuple(ref.classes)
    classes = ["dog", "newthing", "person"]
    ref.reset_class(classes, reuse_weights=["dog", "person"])
    with autograd.train_mode():  # gluoncv's raw (cls, box, anchors) outputs
        g_cls, g_box, _ = [o.asnumpy() for o in ref(x)]

    net = get_model("ssd_300_vgg16_atrous_voc", classes=classes, ops="builtin")
    summary = load_parameters_for_classes(net, path, source, gluoncv=True)
    assert summary.reused == ("dog", "person") and summary.new == ("newthing",)
    cls, box, _ = [o.asnumpy() for o in net(x)]
    scale = np.abs(g_cls).max()
    np.testing.assert_allclose(cls[..., [0, 1, 3]], g_cls[..., [0, 1, 3]], atol=1e-5 * scale)
    np.testing.assert_allclose(box, g_box, atol=1e-5 * np.abs(g_box).max(), rtol=1e-5)
