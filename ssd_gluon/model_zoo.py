"""Model presets: explicit builders with the paper's numbers, ``get_model`` and weight loading
(our checkpoints, gluoncv's SSD files, an ImageNet VGG16-atrous base)."""
import os
import re

import mxnet as mx

from .anchors import anchor_specs
from .model import SSD
from .sample import SAMPLE_CLASSES
from .vgg import EXTRAS_300, EXTRAS_512, VGGAtrous, vgg16_atrous
from .voc import VOC_CLASSES

_R3 = (1, 2, 0.5)                  # ratios {1, 2, 1/2}
_R5 = (1, 2, 0.5, 3, 1.0 / 3)      # ratios {1, 2, 1/2, 3, 1/3}


def ssd_300_vgg16_atrous_voc(classes=None, ops="auto"):
    """SSD300: 300x300 input, 8732 anchors on conv4_3 (38), fc7 (19), conv8_2 (10),
    conv9_2 (5), conv10_2 (3), conv11_2 (1)."""
    specs = anchor_specs(sizes=[30, 60, 111, 162, 213, 264, 315],
                         ratios=[_R3, _R5, _R5, _R5, _R3, _R3],
                         steps=[8, 16, 32, 64, 100, 300])
    return SSD(vgg16_atrous(EXTRAS_300), specs, classes or VOC_CLASSES, base_size=300, ops=ops)


def ssd_512_vgg16_atrous_voc(classes=None, ops="auto"):
    """SSD512: 512x512 input, 24564 anchors on seven maps (64, 32, 16, 8, 4, 2, 1).

    Sizes are gluoncv's (first layer 51.2 px) so its published weights load unchanged; the
    original Caffe model uses 35.84 px on conv4_3.
    """
    specs = anchor_specs(sizes=[51.2, 76.8, 153.6, 230.4, 307.2, 384.0, 460.8, 537.6],
                         ratios=[_R3, _R5, _R5, _R5, _R5, _R3, _R3],
                         steps=[8, 16, 32, 64, 128, 256, 512])
    return SSD(vgg16_atrous(EXTRAS_512), specs, classes or VOC_CLASSES, base_size=512, ops=ops)


def ssd_demo(classes=None, ops="auto"):
    """Compact SSD for 2 CPU cores, trained from scratch in minutes: a thin VGG-atrous (same
    topology, 1/4-1/8 of the channels, BatchNorm instead of the conv4_3 L2Norm), 96x96 input,
    ratios {1, 2, 1/2} on every map (the sample's objects stay within aspect 2/3..3/2),
    776 anchors on five maps (12, 6, 3, 2, 1)."""
    features = VGGAtrous(layers=(1, 1, 2, 2, 2), filters=(16, 24, 32, 64, 64),
                         fc_channels=96, fc_dilation=2, batch_norm=True, caffe_scale=False,
                         l2norm=False,
                         extras=[[(48, 1, 1, 0), (96, 3, 2, 1)],    # 6 -> 3
                                 [(48, 1, 1, 0), (96, 3, 2, 1)],    # 3 -> 2
                                 [(48, 1, 1, 0), (96, 2, 1, 0)]])   # 2 -> 1
    specs = anchor_specs(sizes=[10, 20, 36, 54, 76, 100], ratios=[_R3] * 5,
                         steps=[8, 16, 32, 48, 96])
    return SSD(features, specs, classes or SAMPLE_CLASSES, base_size=96, ops=ops)


_MODELS = {
    "ssd_300_vgg16_atrous_voc": ssd_300_vgg16_atrous_voc,
    "ssd_512_vgg16_atrous_voc": ssd_512_vgg16_atrous_voc,
    "ssd_demo": ssd_demo,
}


def list_models():
    """Names accepted by ``get_model``."""
    return sorted(_MODELS)


def get_model(name, classes=None, pretrained_base=None, ops="auto", **kwargs):
    """Build a preset. Parameters stay un-initialized (call ``net.initialize()``) except the
    base network's when ``pretrained_base`` is a ``.params`` path of an ImageNet
    VGG16-atrous (gluoncv's ``vgg16_atrous`` layout or ours)."""
    if name not in _MODELS:
        raise ValueError("unknown model %r; available: %s" % (name, ", ".join(list_models())))
    net = _MODELS[name](classes=classes, ops=ops, **kwargs)
    if pretrained_base:
        load_base_parameters(net, pretrained_base)
    return net


# gluoncv structured parameter names -> ours. The two trees differ only in naming.
_GLUONCV_RENAMES = [
    (r"^features\.stages\.5\.0\.", "features.fc6."),
    (r"^features\.stages\.5\.2\.", "features.fc7."),
    (r"^features\.norm4\.scale$", "features.conv4_3_norm.scale"),
    (r"^features\.init_scale$", "features.input_scale"),
    (r"^class_predictors\.(\d+)\.predictor\.", r"cls_heads.\1."),
    (r"^box_predictors\.(\d+)\.predictor\.", r"box_heads.\1."),
]
_GLUONCV_SKIP = re.compile(r"^anchor_generators\.")   # gluoncv stores anchors as constants


def _rename_gluoncv(key):
    for pattern, repl in _GLUONCV_RENAMES:
        if re.search(pattern, key):
            return re.sub(pattern, repl, key)
    return key


def _check_file(filename):
    if not os.path.isfile(filename):
        raise FileNotFoundError("%s: parameter file not found" % filename)
    try:
        return mx.nd.load(filename)
    except mx.base.MXNetError as err:
        raise ValueError("%s: not an MXNet parameter file (%s)"
                         % (filename, str(err).splitlines()[0])) from None


def _assign(params, arrays, filename, allow_missing=False):
    """Copy name->array into a structured-name ParameterDict, checking names and shapes."""
    unknown = sorted(set(arrays) - set(params))
    if unknown:
        raise ValueError("%s: %d parameters this model does not have, e.g. %s"
                         % (filename, len(unknown), unknown[0]))
    missing = sorted(set(params) - set(arrays))
    if missing and not allow_missing:
        raise ValueError("%s: missing %d parameters, e.g. %s" % (filename, len(missing), missing[0]))
    for name, arr in arrays.items():
        p = params[name]
        known = p.shape or ()
        if len(known) != arr.ndim or any(k not in (0, -1, n) for k, n in zip(known, arr.shape)):
            raise ValueError("%s: %s has shape %s, the model expects %s (another model or "
                             "class count?)" % (filename, name, arr.shape, p.shape))
        p.shape = arr.shape
        p._load_init(arr, mx.cpu())


def load_gluoncv_parameters(net, filename):
    """Load a file written by gluoncv's ``save_parameters()`` of the same-named SSD model."""
    arrays = {_rename_gluoncv(k): v for k, v in _check_file(filename).items()
              if not _GLUONCV_SKIP.search(k)}
    _assign(net._collect_params_with_prefix(), arrays, filename)
    return net


def load_base_parameters(net, filename):
    """Load ImageNet weights into ``net.features``; accepts gluoncv's ``vgg16_atrous`` file
    (``stages.*``, ``norm4.scale``) or our own feature names. Heads and extras not in the file
    stay un-initialized."""
    arrays = {_rename_gluoncv("features." + k)[len("features."):]: v
              for k, v in _check_file(filename).items()}
    _assign(net.features._collect_params_with_prefix(), arrays, filename, allow_missing=True)
    return net


def load_parameters(net, filename):
    """Load a file written by ``net.save_parameters()`` (our checkpoints), with errors that
    name the file and the mismatch."""
    _assign(net._collect_params_with_prefix(), _check_file(filename), filename)
    return net


def pretrained_base_file(spec):
    """``--pretrained-base`` value -> a local .params path: a path is returned as is;
    ``gluoncv`` fetches gluoncv's ImageNet ``vgg16_atrous`` (cached under ~/.mxnet/models;
    needs the network on first use)."""
    if spec != "gluoncv":
        return spec
    from gluoncv.model_zoo.model_store import get_model_file
    try:
        return get_model_file("vgg16_atrous", tag=True)
    except Exception as err:  # noqa: BLE001 - any download failure gets the same advice
        reason = (str(err).strip().splitlines() or [type(err).__name__])[-1]
        raise RuntimeError("--pretrained-base gluoncv: could not fetch vgg16_atrous from "
                           "gluoncv's model store (%s); download it where the network is "
                           "reachable and pass the .params path" % reason[:200]) from None
