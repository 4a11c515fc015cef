"""Detector speed as users quote it: images/s of forward + post-processing (decode + NMS)
on a hybridized predictor after warm-up, median of repeats, per batch size; and the data
loading rate measured on its own."""

import statistics
import time

import mxnet as mx


def timed_call(fn):
    """Seconds of ``fn()`` until every NDArray it returns (one or a list) is computed."""
    t0 = time.perf_counter()
    outs = fn()
    for o in outs if isinstance(outs, (list, tuple)) else [outs]:
        o.wait_to_read()
    return time.perf_counter() - t0


def predictor_rate(predictor, data_shape, ctx, batch_size, repeats=10, warmup=3):
    """(images/s, ms per batch): median over ``repeats`` timed calls of ``predictor`` on a
    (batch_size, 3, S, S) input of random RGB pixels 0-255 (the input of
    ``deploy.loading.load_detector``'s block), each waited on to the last output."""
    x = mx.nd.random.uniform(0, 255, shape=(batch_size, 3, data_shape, data_shape), ctx=ctx)
    times = [timed_call(lambda: predictor(x)) for _ in range(warmup + repeats)]
    seconds = statistics.median(times[warmup:])
    return batch_size / seconds, seconds * 1000


def detector_speed(predictor, data_shape, ctx, batch_sizes=(1, 8), repeats=10, warmup=3):
    """{'batch_<b>': {'images_per_sec', 'ms_per_batch'}} for each batch size."""
    speed = {}
    for b in batch_sizes:
        ips, ms = predictor_rate(predictor, data_shape, ctx, b, repeats, warmup)
        speed["batch_%d" % b] = dict(images_per_sec=ips, ms_per_batch=ms)
    return speed


def data_rate(batches, max_batches=50):
    """Images/s of reading, decoding and resizing (a val_iter) alone, over up to
    ``max_batches`` batches."""
    batches.reset()
    images, t0 = 0, time.perf_counter()
    for i, batch in enumerate(batches):
        if i >= max_batches:
            break
        batch.data[0].wait_to_read()
        images += batch.data[0].shape[0] - batch.pad
    return images / max(time.perf_counter() - t0, 1e-9)
