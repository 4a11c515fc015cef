"""Loading a trained detector for evaluation, export and detection."""
import mxnet as mx

from . import model_zoo


def load_detector(model, params, classes=None, ops="auto", gluoncv=False, ctx=None):
    """Build preset ``model`` and load ``params`` (ours, or gluoncv's with ``gluoncv=True``).

    Errors name the file: missing, not a parameter file, or written for another model or
    class count.
    """
    net = model_zoo.get_model(model, classes=classes, ops=ops)
    if gluoncv:
        model_zoo.load_gluoncv_parameters(net, params)
    else:
        model_zoo.load_parameters(net, params)
    if ctx is not None and ctx != mx.cpu():
        net.collect_params().reset_ctx(ctx)
    return net
