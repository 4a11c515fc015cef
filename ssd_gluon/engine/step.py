"""One optimisation step of SSD training."""

from mxnet import autograd

from ..model.loss import SSDLoss
from ..model.target import MultiBoxTargetGenerator


class TrainStep:
    """Forward, device-side targets, loss, backward, allreduce + update.

    The network, target generator and loss are hybridized graphs; the returned losses
    (total, cls, box), each of shape (1,), are device arrays: no host synchronization here.
    ``amp=True`` scales the loss for MXNet AMP (``amp.init()`` and ``amp.init_trainer()``
    done by the caller).
    """

    def __init__(self, net, trainer, ops="auto", amp=False):
        self.net, self.trainer, self.amp = net, trainer, amp
        self.target = MultiBoxTargetGenerator(ops=ops)
        self.loss = SSDLoss()
        for block in (self.net, self.target, self.loss):
            block.hybridize(static_alloc=True, static_shape=True)

    def __call__(self, data, objects):
        """data (B, 3, S, S) normalized images, objects (B, M, >=5) labels (class -1 pads)."""
        with autograd.record():
            cls_preds, box_preds, anchors = self.net(data)
            targets = self.target(anchors, objects, cls_preds)
            total, cls_loss, box_loss = self.loss(cls_preds, box_preds, *targets)
            if self.amp:
                from mxnet.contrib import amp

                with amp.scale_loss(total, self.trainer) as scaled:
                    autograd.backward(scaled)
        if not self.amp:
            total.backward()
        self.trainer.step(1)
        return total, cls_loss, box_loss
