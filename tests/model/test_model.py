"""The network: equality with gluoncv's VOC and COCO SSDs under identical weights,
hybridization, one return type in every mode, weight loading errors."""

import mxnet as mx
import numpy as np
import pytest
from mxnet import autograd

from ssd_gluon import get_model, list_models, load_gluoncv_parameters, load_parameters


def _center_to_corner(a, size):
    a = a / size
    return np.concatenate([a[..., :2] - a[..., 2:] / 2, a[..., :2] + a[..., 2:] / 2], -1)


@pytest.mark.parametrize(
    "name,size,num_classes",
    [
        ("ssd_300_vgg16_atrous_voc", 300, 20),
        ("ssd_512_vgg16_atrous_voc", 512, 20),
        ("ssd_300_vgg16_atrous_coco", 300, 80),
        ("ssd_512_vgg16_atrous_coco", 512, 80),
    ],
)
def test_equals_gluoncv_with_same_weights(name, size, num_classes, tmp_path):
    gluoncv = pytest.importorskip("gluoncv")
    mx.random.seed(1)
    ref = gluoncv.model_zoo.get_model(name, pretrained_base=False)
    ref.initialize(mx.init.Xavier(magnitude=2))
    x = mx.nd.random.normal(shape=(1, 3, size, size))
    with autograd.train_mode():
        g_cls, g_box, g_anc = [o.asnumpy() for o in ref(x)]
    path = str(tmp_path / "gluoncv.params")
    ref.save_parameters(path)

    net = get_model(name, ops="builtin")
    load_gluoncv_parameters(net, path)
    cls, box, anc = [o.asnumpy() for o in net(x)]
    assert net.num_classes == num_classes and cls.shape[-1] == num_classes + 1
    assert net.classes == tuple(ref.classes)  # the same names in the same order
    scale = np.abs(g_cls).max()
    np.testing.assert_allclose(cls, g_cls, atol=1e-5 * scale, rtol=1e-5)
    np.testing.assert_allclose(box, g_box, atol=1e-5 * np.abs(g_box).max(), rtol=1e-5)
    np.testing.assert_allclose(anc, _center_to_corner(g_anc, size), atol=1e-6)


def test_same_outputs_hybridized_training_and_inference():
    net = get_model("ssd_demo", ops="builtin")
    net.initialize()
    x = mx.nd.random.uniform(-1, 1, shape=(2, 3, 96, 96))
    with autograd.predict_mode():
        plain = [o.asnumpy() for o in net(x)]
    net.hybridize()
    with autograd.train_mode():
        outs = net(x)
    assert len(outs) == 3
    # BatchNorm in the demo model uses batch statistics in training mode: compare shapes there
    assert [o.shape for o in outs] == [p.shape for p in plain]
    with autograd.predict_mode():
        for a, b in zip(net(x), plain):
            np.testing.assert_allclose(a.asnumpy(), b, rtol=1e-5, atol=1e-5)


def test_parameters_uninitialized_until_initialize():
    net = get_model("ssd_demo", ops="builtin")
    with pytest.raises(RuntimeError):
        net.features.stages[0][0].weight.data()


def test_list_and_unknown_model():
    assert {
        "ssd_300_vgg16_atrous_voc",
        "ssd_512_vgg16_atrous_voc",
        "ssd_300_vgg16_atrous_coco",
        "ssd_512_vgg16_atrous_coco",
        "ssd_demo",
    } <= set(list_models())
    with pytest.raises(ValueError, match="unknown model 'ssd_9000'.*ssd_demo"):
        get_model("ssd_9000")


def test_checkpoint_round_trip_and_mismatch_errors(tmp_path):
    net = get_model("ssd_demo", ops="builtin")
    net.initialize()
    x = mx.nd.random.uniform(shape=(1, 3, 96, 96))
    with autograd.predict_mode():
        before = net(x)[0].asnumpy()
    path = str(tmp_path / "demo.params")
    net.save_parameters(path)
    again = load_parameters(get_model("ssd_demo", ops="builtin"), path)
    with autograd.predict_mode():
        np.testing.assert_allclose(again(x)[0].asnumpy(), before, rtol=1e-6)
    other = get_model("ssd_demo", classes=["a", "b"], ops="builtin")
    with pytest.raises(ValueError, match="demo.params: .* has shape .* class count"):
        load_parameters(other, path)
    with pytest.raises(ValueError, match="parameters this model does not have"):
        load_parameters(get_model("ssd_300_vgg16_atrous_voc"), path)
    junk = tmp_path / "junk.params"
    junk.write_bytes(b"not params")
    with pytest.raises(ValueError, match="junk.params: not an MXNet parameter file"):
        load_parameters(net, str(junk))
    with pytest.raises(FileNotFoundError, match="nope.params: parameter file not found"):
        load_parameters(net, str(tmp_path / "nope.params"))


def test_pretrained_base_loads_features_only(tmp_path):
    src = get_model("ssd_300_vgg16_atrous_voc", ops="builtin")
    src.initialize()
    src(mx.nd.zeros((1, 3, 300, 300)))
    path = str(tmp_path / "base.params")
    src.features.save_parameters(path)
    net = get_model("ssd_300_vgg16_atrous_voc", pretrained_base=path, ops="builtin")
    np.testing.assert_array_equal(
        net.features.fc7.weight.data().asnumpy(), src.features.fc7.weight.data().asnumpy()
    )
    with pytest.raises(RuntimeError):
        net.cls_heads[0].weight.data()  # heads still await initialize()
