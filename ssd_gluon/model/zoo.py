"""Model presets: explicit builders with the paper's numbers inline, ``get_model`` and
``load_network`` (a preset with trained weights)."""

import mxnet as mx

from ..data.classes import COCO_CLASSES, SAMPLE_CLASSES, VOC_CLASSES
from ..utils.errors import UserError
from .anchors import anchor_specs
from .ssd import SSD
from .vgg import EXTRAS_300, EXTRAS_512, VGGAtrous, vgg16_atrous
from .weights import load_base_parameters, load_gluoncv_parameters, load_parameters

_R3 = (1, 2, 0.5)  # ratios {1, 2, 1/2}
_R5 = (1, 2, 0.5, 3, 1.0 / 3)  # ratios {1, 2, 1/2, 3, 1/3}


def ssd_300_vgg16_atrous_voc(classes=None, ops="auto"):
    """SSD300: 300x300 input, 8732 anchors on conv4_3 (38), fc7 (19), conv8_2 (10),
    conv9_2 (5), conv10_2 (3), conv11_2 (1)."""
    specs = anchor_specs(
        sizes=[30, 60, 111, 162, 213, 264, 315],
        ratios=[_R3, _R5, _R5, _R5, _R3, _R3],
        steps=[8, 16, 32, 64, 100, 300],
    )
    return SSD(vgg16_atrous(EXTRAS_300), specs, classes or VOC_CLASSES, base_size=300, ops=ops)


def ssd_512_vgg16_atrous_voc(classes=None, ops="auto"):
    """SSD512: 512x512 input, 24564 anchors on seven maps (64, 32, 16, 8, 4, 2, 1).

    Sizes are gluoncv's (first layer 51.2 px) so its published weights load unchanged; the
    original Caffe model uses 35.84 px on conv4_3.
    """
    specs = anchor_specs(
        sizes=[51.2, 76.8, 153.6, 230.4, 307.2, 384.0, 460.8, 537.6],
        ratios=[_R3, _R5, _R5, _R5, _R5, _R3, _R3],
        steps=[8, 16, 32, 64, 128, 256, 512],
    )
    return SSD(vgg16_atrous(EXTRAS_512), specs, classes or VOC_CLASSES, base_size=512, ops=ops)


def ssd_300_vgg16_atrous_coco(classes=None, ops="auto"):
    """SSD300 for COCO's 80 classes: the VOC model's layers and 8732 anchors with the
    paper's smaller COCO sizes (21 px on conv4_3; COCO has more small objects)."""
    specs = anchor_specs(
        sizes=[21, 45, 99, 153, 207, 261, 315],
        ratios=[_R3, _R5, _R5, _R5, _R3, _R3],
        steps=[8, 16, 32, 64, 100, 300],
    )
    return SSD(vgg16_atrous(EXTRAS_300), specs, classes or COCO_CLASSES, base_size=300, ops=ops)


def ssd_512_vgg16_atrous_coco(classes=None, ops="auto"):
    """SSD512 for COCO's 80 classes: the VOC model's layers and 24564 anchors.

    Sizes are gluoncv's, the same as its VOC SSD512 (the original Caffe COCO model uses
    smaller ones), so its published weights load unchanged.
    """
    specs = anchor_specs(
        sizes=[51.2, 76.8, 153.6, 230.4, 307.2, 384.0, 460.8, 537.6],
        ratios=[_R3, _R5, _R5, _R5, _R5, _R3, _R3],
        steps=[8, 16, 32, 64, 128, 256, 512],
    )
    return SSD(vgg16_atrous(EXTRAS_512), specs, classes or COCO_CLASSES, base_size=512, ops=ops)


def ssd_demo(classes=None, ops="auto"):
    """Compact SSD for 2 CPU cores, trained from scratch in minutes: a thin VGG-atrous (same
    topology, 1/4-1/8 of the channels, BatchNorm instead of the conv4_3 L2Norm), 96x96 input,
    ratios {1, 2, 1/2} on every map (the sample's objects stay within aspect 2/3..3/2),
    776 anchors on five maps (12, 6, 3, 2, 1)."""
    features = VGGAtrous(
        layers=(1, 1, 2, 2, 2),
        filters=(16, 24, 32, 64, 64),
        fc_channels=96,
        fc_dilation=2,
        batch_norm=True,
        caffe_scale=False,
        l2norm=False,
        extras=[
            [(48, 1, 1, 0), (96, 3, 2, 1)],  # 6 -> 3
            [(48, 1, 1, 0), (96, 3, 2, 1)],  # 3 -> 2
            [(48, 1, 1, 0), (96, 2, 1, 0)],
        ],
    )  # 2 -> 1
    specs = anchor_specs(
        sizes=[10, 20, 36, 54, 76, 100], ratios=[_R3] * 5, steps=[8, 16, 32, 48, 96]
    )
    return SSD(features, specs, classes or SAMPLE_CLASSES, base_size=96, ops=ops)


_MODELS = {
    "ssd_300_vgg16_atrous_voc": ssd_300_vgg16_atrous_voc,
    "ssd_512_vgg16_atrous_voc": ssd_512_vgg16_atrous_voc,
    "ssd_300_vgg16_atrous_coco": ssd_300_vgg16_atrous_coco,
    "ssd_512_vgg16_atrous_coco": ssd_512_vgg16_atrous_coco,
    "ssd_demo": ssd_demo,
}


def list_models():
    """Names accepted by ``get_model``."""
    return sorted(_MODELS)


def check_model_name(name):
    """``name`` if it is a preset; a one-line error naming the choices otherwise."""
    if name not in _MODELS:
        raise UserError("unknown model %r; available: %s" % (name, ", ".join(list_models())))
    return name


def get_model(name, classes=None, pretrained_base=None, ops="auto", **kwargs):
    """Build a preset. Parameters stay un-initialized (call ``net.initialize()``) except the
    base network's when ``pretrained_base`` is a ``.params`` path of an ImageNet
    VGG16-atrous (gluoncv's ``vgg16_atrous`` layout or ours)."""
    net = _MODELS[check_model_name(name)](classes=classes, ops=ops, **kwargs)
    if pretrained_base:
        load_base_parameters(net, pretrained_base)
    return net


def load_network(name, params, classes=None, ops="auto", gluoncv=False, ctx=None):
    """Preset ``name`` with trained weights from ``params``: our checkpoints (``ckpt-*``,
    ``best``, ``final``), or a file saved by gluoncv's same-named model with ``gluoncv=True``.
    Parameters end on ``ctx`` (default CPU). Errors name the file: missing, not a parameter
    file, or written for another model or class count."""
    net = get_model(name, classes=classes, ops=ops)
    (load_gluoncv_parameters if gluoncv else load_parameters)(net, params)
    if ctx is not None and ctx != mx.cpu():  # loading initialized them on the CPU
        net.collect_params().reset_ctx(ctx)
    return net
