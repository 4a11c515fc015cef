"""What the training and evaluation loops need from Horovod, with a one-process fallback, so
the loops read the same alone and under ``horovodrun``."""

import os

import mxnet as mx

# Set in each process by the launchers that start Horovod workers.
LAUNCHER_RANK_VARIABLES = ("HOROVOD_RANK", "OMPI_COMM_WORLD_RANK", "PMI_RANK")


class Workers:
    """``hvd`` is ``horovod.mxnet`` after ``hvd.init()``, or None for a single process."""

    def __init__(self, hvd=None):
        self.hvd = hvd
        self.rank = hvd.rank() if hvd else 0
        self.size = hvd.size() if hvd else 1
        self.local_rank = hvd.local_rank() if hvd else 0

    @classmethod
    def from_env(cls):
        """The one place that decides alone or Horovod, for every entry point: Horovod when
        this process was started by ``horovodrun`` (Gloo sets ``HOROVOD_RANK``) or by
        ``mpirun`` (Open MPI / MPICH set their rank variables), else a single process, which
        then needs no Horovod installed."""
        if not any(v in os.environ for v in LAUNCHER_RANK_VARIABLES):
            return cls()
        import horovod.mxnet as hvd

        hvd.init()
        return cls(hvd)

    @property
    def is_root(self):
        return self.rank == 0

    def context(self):
        """This worker's device: its local GPU, or the CPU."""
        return mx.gpu(self.local_rank) if mx.context.num_gpus() > 0 else mx.cpu()

    def trainer(self, params, optimizer, optimizer_params):
        """A gluon Trainer whose gradients are averaged over the workers (Horovod's
        DistributedTrainer), or a plain one for a single process."""
        if self.hvd is None:
            return mx.gluon.Trainer(params, optimizer, optimizer_params)
        return self.hvd.DistributedTrainer(params, optimizer, optimizer_params)

    def any(self, name, flags):
        """Element-wise OR of a list of booleans over the workers (one small allreduce), so
        that every worker takes the same decision (stop, NaN) at the same step."""
        if self.size == 1:
            return [bool(f) for f in flags]
        arr = mx.nd.array([float(bool(f)) for f in flags])
        total = self.hvd.allreduce(arr, average=False, name=name).asnumpy()
        return [bool(v > 0) for v in total]

    def average_(self, name, array):
        """Average ``array`` in place over the workers (through a default-layout copy, see
        ``broadcast_parameters``)."""
        if self.size > 1:
            copy = _default_layout(array)
            self.hvd.allreduce_(copy, average=True, name=name)
            array[:] = copy

    def gather(self, name, array):
        """NumPy (n_i, ...) of each worker -> (sum n_i, ...) concatenated in rank order."""
        if self.size == 1:
            return array
        out = self.hvd.allgather(mx.nd.array(array, dtype=array.dtype), name=name)
        return out.asnumpy()

    def broadcast_parameters(self, params):
        """Rank 0's parameter values on every worker. On the CPU a forward pass leaves
        MKLDNN-layout weights, which Horovod cannot read ("We can't generate TBlob for
        MKLDNN data"), so default-layout copies travel; gradients keep their layout and
        allreduce fine."""
        if self.size == 1:
            return
        for i, (name, p) in enumerate(sorted(params.items())):
            copy = _default_layout(p.data())
            self.hvd.broadcast_(copy, root_rank=0, name="param.%d" % i)
            p.set_data(copy)

    def from_root(self, name, obj):
        """Rank 0's ``obj`` (any picklable value) on every worker; the others pass None."""
        if self.size == 1:
            return obj
        return self.hvd.broadcast_object(obj, root_rank=0, name=name)

    def barrier(self, name="barrier"):
        """Every worker waits here for the others."""
        if self.size > 1:
            self.hvd.allreduce(mx.nd.zeros((1,)), name=name).wait_to_read()

    def finish(self, name="finished"):
        """The last collective of a run: every worker waits for the others, so none exits
        while a peer still has a collective (or its result) pending: Horovod fails pending
        operations of a worker whose peer has exited. A peer exiting right after this
        barrier cannot hurt any more, so that error is ignored here."""
        try:
            self.barrier(name)
        except mx.base.MXNetError as err:
            if not is_shutdown_error(err):
                raise


def _default_layout(array):
    """A copy of ``array`` in MXNet's default layout (via the host: used once per run or
    epoch, never per step)."""
    return mx.nd.array(array.asnumpy(), ctx=array.context, dtype=array.dtype)


# What MXNet raises in a worker whose peer died: Horovod's own message once it has shut
# down, or Gloo's transport error when the peer vanished in the middle of a collective (a
# worker in an allreduce at that moment gets "Read error [host]: Connection reset by peer").
PEER_GONE = (
    "Horovod has been shut down",
    "Connection reset by peer",
    "Connection closed by peer",
    "Read error [",
    "Write error [",
)


def is_shutdown_error(err):
    """True for the error MXNet raises in a worker whose peer died."""
    return isinstance(err, mx.base.MXNetError) and any(m in str(err) for m in PEER_GONE)
