"""What the training and evaluation loops need from Horovod, with a one-process fallback, so
the loops read the same alone and under ``horovodrun``."""
import mxnet as mx


class Workers:
    """``hvd`` is ``horovod.mxnet`` after ``hvd.init()``, or None for a single process."""

    def __init__(self, hvd=None):
        self.hvd = hvd
        self.rank = hvd.rank() if hvd else 0
        self.size = hvd.size() if hvd else 1
        self.local_rank = hvd.local_rank() if hvd else 0

    @property
    def is_root(self):
        return self.rank == 0

    def any(self, name, flags):
        """Element-wise OR of a list of booleans over the workers (one small allreduce), so
        that every worker takes the same decision (stop, NaN) at the same step."""
        if self.size == 1:
            return [bool(f) for f in flags]
        arr = mx.nd.array([float(bool(f)) for f in flags])
        total = self.hvd.allreduce(arr, average=False, name=name).asnumpy()
        return [bool(v > 0) for v in total]

    def average_(self, name, array):
        """Average ``array`` in place over the workers."""
        if self.size > 1:
            self.hvd.allreduce_(array, average=True, name=name)

    def gather(self, name, array):
        """NumPy (n_i, ...) of each worker -> (sum n_i, ...) concatenated in rank order."""
        if self.size == 1:
            return array
        out = self.hvd.allgather(mx.nd.array(array, dtype=array.dtype), name=name)
        return out.asnumpy()

    def broadcast_parameters(self, params):
        if self.size > 1:
            self.hvd.broadcast_parameters(params, root_rank=0)

    def barrier(self, name="barrier"):
        """Every worker waits here for the others."""
        if self.size > 1:
            self.hvd.allreduce(mx.nd.zeros((1,)), name=name).wait_to_read()


def is_shutdown_error(err):
    """True for the error MXNet raises in a worker whose peer died (Horovod shut down)."""
    return isinstance(err, mx.base.MXNetError) and "Horovod has been shut down" in str(err)

