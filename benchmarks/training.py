"""Training throughput on CPU (float32): our training step against a gluoncv-style one on the
same records, and the Horovod scaling of ours on this machine.

Side by side, per preset, on the same packed VOC-like records and the same batch size:

* ours: ``ssd_gluon.data.loader.train_iter`` (MXNet's C++ ImageDetRecordIter, the paper's
  augmentation in ``threads`` C++ threads) feeding ``ssd_gluon.engine.step.TrainStep``
  (forward, in-graph anchor matching and hard negative mining, loss, backward, update;
  nothing read back to the host);
* peer, the step of gluoncv's ``train_ssd.py``: a gluon DataLoader over
  ``RecordFileDetection`` with ``SSDDefaultTrainTransform(w, h, anchors)`` in ``workers``
  processes (augmentation and anchor matching in the workers), batchified by ``Stack``; a
  hybridized gluoncv ``SSD`` of the same architecture; ``SSDMultiBoxLoss`` (hard negative
  mining outside the graph, the positive count read back every step);
  ``autograd.backward`` and ``trainer.step``.

Fairness: both run in one process, in alternating timed rounds (the side that goes first
swaps each round) so the noise of a shared machine hits both alike. Each side's rate is the
median over rounds; a round ends waiting on all outputs (``mx.nd.waitall``). For the compact
preset, whose input pipelines can be the limit, each round starts with untimed steps that
use up the batches the side's loader prefetched while the other side ran (free batches
otherwise). The peer's worker processes are forked before any ImageDetRecordIter exists in
the process (forking after its C++ threads start can deadlock the workers), as in
``pipeline.bench_data``. Rounds are timed like a training loop runs: the host is not
synchronized per step; ``profile_side`` then waits on each step to split input wait from
compute.

Scaling: ``horovod_scaling`` runs our step under ``horovodrun -np 1`` and ``-np 2`` (Gloo,
CPU, MKLDNN layout on), with the cores split evenly between the processes (OpenMP and decode
threads), each rank reading its own shard.
"""

import argparse
import collections
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time

import mxnet as mx
from mxnet import autograd

from ssd_gluon import ops
from ssd_gluon.data.loader import train_iter
from ssd_gluon.data.records import read_classes, split_label
from ssd_gluon.engine.distributed import Workers
from ssd_gluon.engine.step import TrainStep
from ssd_gluon.model.zoo import get_model
from ssd_gluon.utils import cli
from ssd_gluon.utils.files import write_json

from common import cpu_seconds, endless, make_records

SGD = dict(learning_rate=1e-3, momentum=0.9, wd=5e-4)
COMPACT, SSD300 = "ssd_demo", "ssd_300_vgg16_atrous_voc"
PEER_NAME = "gluoncv-style step"
# Printed by rank 0 of a Horovod worker run in front of its JSON result.
RESULT_TAG = "BENCH_TRAIN_RESULT "

# One training pipeline: an endless stream of batches and a function that trains on one.
Side = collections.namedtuple("Side", "batches step")
# Steps of one preset and side: ``first`` untimed steps (graph building, optimizer states),
# then ``rounds`` rounds of ``warmup`` untimed and ``steps`` timed steps, then ``profile``
# steps waited on one by one (0: no profile).
Plan = collections.namedtuple("Plan", "preset first warmup steps rounds profile")


def _epochs_of(it):
    """``endless`` over a DataIter: each epoch resets it first (a reset before the first
    read is skipped by ResetSafeIter), as a training loop does."""

    def epoch():
        it.reset()
        return it

    return epoch


def _our_net(preset, classes, impl):
    """Our preset, initialized (a first forward pass finishes the deferred shapes)."""
    net = get_model(preset, classes=classes, ops=impl)
    net.initialize()
    net(mx.nd.zeros((1, 3, net.base_size, net.base_size)))
    return net


def our_step(preset, classes, make_trainer=None):
    """(net, TrainStep) of our preset with SGD; ``make_trainer(params)`` replaces the plain
    gluon Trainer (Horovod passes its DistributedTrainer). Our operators when the library is
    built (what a user gets with ops='auto')."""
    impl = ops.resolve("auto")
    net = _our_net(preset, classes, impl)
    params = net.collect_params()
    trainer = make_trainer(params) if make_trainer else mx.gluon.Trainer(params, "sgd", SGD)
    return net, TrainStep(net, trainer, ops=impl)


def our_side(net, step, rec, batch_size, threads, part_index=0, num_parts=1, seed=0):
    """Side running our real pipeline: train_iter (paper augmentation) -> TrainStep."""
    it = train_iter(
        rec,
        net.base_size,
        batch_size,
        part_index,
        num_parts,
        seed,
        augment="paper",
        threads=threads,
    )

    def run(batch):
        objects, _ = split_label(batch.label[0])
        return step(batch.data[0], objects)

    return Side(endless(_epochs_of(it)), run)


def gluoncv_net(preset, classes):
    """A gluoncv SSD with the same compute as our preset, not pretrained (nothing can be
    downloaded here): gluoncv's own SSD300 preset, or for the compact preset gluoncv's SSD
    class around our compact feature extractor with our anchor sizes, ratios and steps."""
    from gluoncv import model_zoo as gcv_zoo
    from gluoncv.model_zoo.ssd import SSD as GluoncvSSD

    if preset == SSD300:
        return gcv_zoo.get_model(
            "ssd_300_vgg16_atrous_custom", classes=classes, pretrained_base=False
        )
    ref = get_model(preset, classes=classes, ops="builtin")
    specs = ref.anchor_specs

    # gluoncv calls features(pretrained=..., ctx=..., ...) inside its name scope; our
    # feature extractor returns the list of source maps that gluoncv's heads expect.
    def features(**_):
        return get_model(preset, classes=classes, ops="builtin").features

    return GluoncvSSD(
        None,
        ref.base_size,
        features,
        None,
        sizes=[s.size_min for s in specs] + [specs[-1].size_max],
        ratios=[list(s.ratios) for s in specs],
        steps=[s.step for s in specs],
        classes=classes,
        pretrained=False,
    )


def peer_side(preset, rec, classes, base_size, batch_size, workers):
    """Side running gluoncv's train_ssd.py step. Forks ``workers`` processes: call it before
    any ImageDetRecordIter exists in the process."""
    from gluoncv.data import RecordFileDetection
    from gluoncv.data.batchify import Stack, Tuple
    from gluoncv.data.transforms.presets.ssd import SSDDefaultTrainTransform
    from gluoncv.loss import SSDMultiBoxLoss
    from mxnet.gluon.data import DataLoader

    net = gluoncv_net(preset, classes)
    net.initialize()
    net.hybridize(static_alloc=True, static_shape=True)
    # As train_ssd.py: one forward in train mode gives the anchors the workers match against.
    with autograd.train_mode():
        _, _, anchors = net(mx.nd.zeros((1, 3, base_size, base_size)))
    transform = SSDDefaultTrainTransform(base_size, base_size, anchors.as_in_context(mx.cpu()))
    loader = DataLoader(
        RecordFileDetection(rec).transform(transform),
        batch_size,
        shuffle=True,
        last_batch="rollover",
        num_workers=workers,
        batchify_fn=Tuple(Stack(), Stack(), Stack()),
    )
    trainer = mx.gluon.Trainer(net.collect_params(), "sgd", SGD)
    loss_fn = SSDMultiBoxLoss()

    def run(batch):
        # Workers hand over shared-memory arrays; train_ssd.py's split_and_load copies
        # them to the training context likewise.
        images, cls_targets, box_targets = [b.as_in_context(mx.cpu()) for b in batch]
        with autograd.record():
            cls_preds, box_preds, _ = net(images)
            total, cls_loss, box_loss = loss_fn(cls_preds, box_preds, cls_targets, box_targets)
            autograd.backward(total)
        trainer.step(1)
        return total

    return Side(endless(lambda: iter(loader)), run)


def run_steps(side, steps):
    """``steps`` training steps, waiting on all outputs at the end."""
    for _ in range(steps):
        side.step(next(side.batches))
    mx.nd.waitall()


def timed_round(side, warmup, steps, batch_size):
    """(images/s, CPU ms per image of this process and its children, i.e. the DataLoader
    workers too) over ``steps`` steps after ``warmup`` untimed ones. Steps are not waited on
    one by one: like a training loop, the host runs ahead while the device computes."""
    run_steps(side, warmup)
    t0, c0 = time.perf_counter(), cpu_seconds()
    run_steps(side, steps)
    wall, cpu = time.perf_counter() - t0, cpu_seconds() - c0
    return steps * batch_size / wall, cpu * 1e3 / (steps * batch_size)


def profile_side(side, steps):
    """(ms per step waiting for a batch, ms per step computing), each step waited on, so the
    two do not overlap: shows whether input or compute limits a side."""
    wait = compute = 0.0
    for _ in range(steps):
        t0 = time.perf_counter()
        batch = next(side.batches)
        mx.nd.waitall()
        t1 = time.perf_counter()
        side.step(batch)
        mx.nd.waitall()
        wait, compute = wait + t1 - t0, compute + time.perf_counter() - t1
    return wait * 1e3 / steps, compute * 1e3 / steps


def compare_preset(plan, ours, peer, batch_size, log=print):
    """Alternating timed rounds of ``ours`` and ``peer``; returns (ours, peer) median img/s."""
    rates = {"ours": [], "peer": []}
    sides = [("ours", ours), ("peer", peer)]
    for _, side in sides:
        run_steps(side, plan.first)
    for r in range(plan.rounds):
        for name, side in sides if r % 2 == 0 else sides[::-1]:
            ips, cpu = timed_round(side, plan.warmup, plan.steps, batch_size)
            rates[name].append(ips)
            log(
                "  %s round %d: %s %.2f img/s, %.1f CPU ms/img"
                % (plan.preset, r + 1, name, ips, cpu)
            )
    for name, side in sides if plan.profile else []:
        wait, compute = profile_side(side, plan.profile)
        log(
            "  %s profile (steps waited on): %s %.1f ms/step waiting for input, %.1f ms/step "
            "computing" % (plan.preset, name, wait, compute)
        )
    return statistics.median(rates["ours"]), statistics.median(rates["peer"])


def compare_training(rec, plans, batch_size=8, threads=2, workers=2, log=print):
    """Rows (case, ours img/s, peer img/s, peer name, 'images/s'), one per plan."""
    classes = read_classes(rec)
    nets = {p.preset: our_step(p.preset, classes) for p in plans}
    # Every peer first: its DataLoader forks its workers now, before our iterators exist.
    peers = {
        p.preset: peer_side(
            p.preset, rec, classes, nets[p.preset][0].base_size, batch_size, workers
        )
        for p in plans
    }
    rows = []
    for plan in plans:
        net, step = nets[plan.preset]
        ours = our_side(net, step, rec, batch_size, threads)
        log(
            "== train %s (%dx%d, batch %d): %d warm-up steps, then %d round(s) of %d "
            "warm-up + %d timed steps"
            % (
                plan.preset,
                net.base_size,
                net.base_size,
                batch_size,
                plan.first,
                plan.rounds,
                plan.warmup,
                plan.steps,
            )
        )
        r_ours, r_peer = compare_preset(plan, ours, peers[plan.preset], batch_size, log)
        case = (
            "train %s %dx%d, batch %d, float32 CPU (ours: train_iter %d threads + "
            "TrainStep ops=%s; peer: DataLoader %d workers + SSDDefaultTrainTransform "
            "targets + SSDMultiBoxLoss)"
            % (
                plan.preset,
                net.base_size,
                net.base_size,
                batch_size,
                threads,
                ops.resolve("auto"),
                workers,
            )
        )
        log(
            "%s: ours %.2f img/s, %s %.2f img/s, ours/peer %.2fx"
            % (plan.preset, r_ours, PEER_NAME, r_peer, r_ours / r_peer)
        )
        rows.append((case, r_ours, r_peer, PEER_NAME, "images/s"))
    return rows


# ---- Horovod ------------------------------------------------------------------------------


def hvd_worker(args):
    """One Horovod rank: our pipeline on this rank's shard, the same number of steps on every
    rank; rank 0 prints RESULT_TAG + JSON with the global images/s."""
    workers = Workers.from_env()
    rank, size = workers.rank, workers.size
    classes = read_classes(args.rec)
    net, step = our_step(
        args.preset, classes, lambda params: workers.trainer(params, "sgd", dict(SGD))
    )
    workers.broadcast_parameters(net.collect_params())
    side = our_side(net, step, args.rec, args.batch_size, args.threads, rank, size, seed=rank)
    run_steps(side, args.warmup)
    workers.barrier("bench_start")
    t0 = time.perf_counter()
    run_steps(side, args.steps)
    workers.barrier("bench_end")  # the slowest rank sets the global time
    wall = time.perf_counter() - t0
    if rank == 0:
        print(
            RESULT_TAG
            + json.dumps(
                dict(
                    size=size,
                    images_per_sec=size * args.batch_size * args.steps / wall,
                    seconds=wall,
                    omp_threads=os.environ.get("OMP_NUM_THREADS"),
                    mkldnn=os.environ.get("MXNET_MKLDNN_ENABLED"),
                )
            ),
            flush=True,
        )
    return 0


def _run_logged(cmd, env, log_path, timeout):
    """Run ``cmd`` in its own session, output to ``log_path``; on timeout end its process
    group (horovodrun's ranks too) and raise. Returns the exit status."""
    with open(log_path, "w") as out:
        proc = subprocess.Popen(
            cmd, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
        try:
            return proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
            raise RuntimeError("%s timed out after %d s (log: %s)" % (cmd[0], timeout, log_path))


def horovod_rate(rec, num_proc, preset, batch_size, warmup, steps, threads, work_dir, timeout=600):
    """Global images/s of our step under ``horovodrun -np num_proc`` on this host, each rank
    with ``threads`` OpenMP and decode threads."""
    horovodrun = os.path.join(os.path.dirname(sys.executable), "horovodrun")
    if not os.path.exists(horovodrun):
        raise RuntimeError(
            "horovodrun not found next to %s (horovod not installed)" % sys.executable
        )
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    cmd = [
        horovodrun,
        "-np",
        str(num_proc),
        "-H",
        "localhost:%d" % num_proc,
        sys.executable,
        os.path.abspath(__file__),
        "hvd-worker",
        "--rec",
        rec,
        "--preset",
        preset,
        "--batch-size",
        str(batch_size),
        "--warmup",
        str(warmup),
        "--steps",
        str(steps),
        "--threads",
        str(threads),
    ]
    log_path = os.path.join(work_dir, "horovod-np%d.log" % num_proc)
    status = _run_logged(cmd, env, log_path, timeout)
    with open(log_path) as f:
        output = f.read()
    results = [
        json.loads(line.split(RESULT_TAG, 1)[1])
        for line in output.splitlines()
        if RESULT_TAG in line
    ]
    if status != 0 or not results:
        raise RuntimeError(
            "horovodrun -np %d failed (exit %d); last output:\n%s"
            % (num_proc, status, output[-2000:])
        )
    return results[0]["images_per_sec"]


def horovod_scaling(
    rec, work_dir, preset=COMPACT, batch_size=8, warmup=4, steps=30, cores=None, log=print
):
    """Rows: images/s of 1 and 2 Horovod processes and their ratio, cores split evenly."""
    cores = cores or os.cpu_count() or 2
    rates, rows = {}, []
    for n in (1, 2):
        threads = max(1, cores // n)
        rates[n] = horovod_rate(rec, n, preset, batch_size, warmup, steps, threads, work_dir)
        case = (
            "horovod %s batch %d/rank, %d process%s x %d OMP + %d decode threads "
            "(global img/s)" % (preset, batch_size, n, "es" if n > 1 else "", threads, threads)
        )
        log("%s: %.2f img/s" % (case, rates[n]))
        rows.append((case, rates[n], None, None, "images/s"))
    case = (
        "horovod scaling efficiency img/s(2 proc) / img/s(1 proc) on %d cores in all "
        "(same cores split in two: measures Horovod overhead, not speed-up)" % cores
    )
    log("%s: %.3f" % (case, rates[2] / rates[1]))
    rows.append((case, rates[2] / rates[1], None, None, "ratio"))
    return rows


# ---- the suite ----------------------------------------------------------------------------


def bench_train(
    repeats=20,
    log=print,
    num_images=256,
    batch_size=8,
    threads=2,
    workers=2,
    compact_rounds=3,
    ssd300=(1, 2, 2),
    profile=None,
    hvd_steps=None,
    horovod=True,
):
    """Training images/s, ours against the gluoncv-style step, then Horovod 1 vs 2 processes.

    ssd_demo: ``compact_rounds`` rounds of 4 warm-up + ``repeats`` timed steps per side,
    then ``profile`` (default ``repeats``) profiled steps. SSD300: ``ssd300`` = (warm-up,
    timed steps per round, rounds), None to skip; a step takes about 25 s at batch 8 on 2
    cores, so the default (1, 2, 2) costs about 4 minutes. Horovod: ``hvd_steps`` timed
    steps (default 2 x repeats). Rows as ``common.markdown_table`` takes them.
    """
    import shutil

    steps = max(1, repeats)
    plans = [Plan(COMPACT, 2, 4, steps, compact_rounds, steps if profile is None else profile)]
    if ssd300:
        first, per_round, rounds = ssd300
        # SSD300 is compute-bound (input never waits): no per-round warm-up needed.
        plans.append(Plan(SSD300, first, 0, per_round, rounds, 0))
    work = tempfile.mkdtemp(prefix="ssd_bench_train_")
    try:
        rec, _ = make_records(work, num_images, workers)
        # Horovod first, while this process computes nothing: its ranks get the cores.
        hvd_rows = (
            horovod_scaling(rec, work, COMPACT, batch_size, 4, hvd_steps or 2 * steps, log=log)
            if horovod
            else []
        )
        return compare_training(rec, plans, batch_size, threads, workers, log) + hvd_rows
    finally:
        shutil.rmtree(work, ignore_errors=True)


def get_args_parser():
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = p.add_subparsers(dest="mode", required=True)
    run = sub.add_parser("run", help="the benchmark with explicit sizes; rows as JSON")
    run.add_argument("--repeats", type=int, default=20, help="timed ssd_demo steps per round")
    run.add_argument("--num-images", type=int, default=256)
    run.add_argument("--batch-size", type=int, default=8)
    run.add_argument("--rounds", type=int, default=3, help="ssd_demo rounds")
    run.add_argument("--ssd300", default="1,2,2", help="SSD300 WARMUP,STEPS,ROUNDS ('' to skip)")
    run.add_argument("--profile", type=int, default=None, help="ssd_demo steps profiled")
    run.add_argument("--hvd-steps", type=int, default=None)
    run.add_argument("--no-horovod", action="store_true")
    run.add_argument("--json", required=True, help="write the rows here")
    worker = sub.add_parser("hvd-worker", help="one rank under horovodrun (internal)")
    worker.add_argument("--rec", required=True)
    worker.add_argument("--preset", default=COMPACT)
    worker.add_argument("--batch-size", type=int, default=8)
    worker.add_argument("--warmup", type=int, default=4)
    worker.add_argument("--steps", type=int, default=30)
    worker.add_argument("--threads", type=int, default=1)
    return p


def main(args):
    if args.mode == "hvd-worker":
        return hvd_worker(args)
    ssd300 = tuple(int(v) for v in args.ssd300.split(",")) if args.ssd300 else None
    rows = bench_train(
        args.repeats,
        num_images=args.num_images,
        batch_size=args.batch_size,
        compact_rounds=args.rounds,
        ssd300=ssd300,
        profile=args.profile,
        hvd_steps=args.hvd_steps,
        horovod=not args.no_horovod,
    )
    write_json(args.json, rows)
    return 0


if __name__ == "__main__":
    cli.run(main, get_args_parser())
