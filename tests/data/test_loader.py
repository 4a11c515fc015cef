"""The training and evaluation iterators: sharding by rank, per-epoch reshuffling, seeds,
the evaluation labels, and the augmentation grid tool."""

import numpy as np
import pytest

from ssd_gluon.data import loader, records
from ssd_gluon.data.verify import open_records

from conftest import run_cli
from test_augment import write_records

N = 150


@pytest.fixture(scope="module")
def id_rec(tmp_path_factory):
    """N records whose first box's xmin encodes the record id (exact without augmentation)."""
    out = tmp_path_factory.mktemp("ids") / "ids.rec"
    return write_records(out, [[(i % 5, 0.1 + i / 1000, 0.2, 0.6, 0.7)] for i in range(N)])


def epoch_ids(rec, part, parts, seed, epochs=2, batch=8):
    """Record ids per epoch as one rank reads them (padding rows of the last batch dropped)."""
    it = loader.train_iter(
        rec, 32, batch, part_index=part, num_parts=parts, seed=seed, augment="none", threads=1
    )
    out = []
    for _ in range(epochs):
        it.reset()
        ids = []
        for b in it:
            objects, _ = records.split_label(b.label[0])
            xmin = objects.asnumpy()[: batch - b.pad, 0, 1]
            ids += [int(round((v - 0.1) * 1000)) for v in xmin]
        out.append(ids)
    return out


@pytest.mark.parametrize("parts", [2, 3])
def test_shards_are_disjoint_and_cover_the_set(id_rec, parts):
    shards = [epoch_ids(id_rec, k, parts, seed=1, epochs=1)[0] for k in range(parts)]
    assert [len(s) for s in shards] == open_records(id_rec).shard_sizes(parts)
    for s in shards:
        assert len(set(s)) == len(s)
    assert sorted(i for s in shards for i in s) == list(range(N))


def test_reshuffled_each_epoch_and_reproducible(id_rec):
    first = epoch_ids(id_rec, 0, 2, seed=3)
    again = epoch_ids(id_rec, 0, 2, seed=3)
    other = epoch_ids(id_rec, 0, 2, seed=4)
    assert first == again  # same seed, same order
    assert first[0] != first[1]  # a new order each epoch
    assert set(first[1]) <= set(first[0])  # from the same shard
    assert first[0] != other[0]  # the seed matters


def test_val_iter_keeps_labels_difficult_flags_and_sizes(sample_dir):
    rec = str(sample_dir / "test.rec")
    rows = [label for label, _ in records.read_lst(rec)]
    it = loader.val_iter(rec, 64, 8, threads=1)
    got = []
    for b in it:
        objects, sizes = records.split_label(b.label[0])
        keep = 8 - b.pad
        got += list(zip(objects.asnumpy()[:keep], sizes.asnumpy()[:keep]))
    assert len(got) == len(rows)
    difficult = 0
    for (objects, size), row in zip(got, rows):
        k = (len(row) - 4) // 6
        np.testing.assert_allclose(size, row[2:4])  # original width, height
        np.testing.assert_allclose(objects[:k], np.reshape(row[4:], (k, 6)), atol=1e-6)
        assert np.all(objects[k:] == -1)
        difficult += int(objects[:k, 5].sum())
    assert difficult > 0  # the flags survive


def test_show_augmentation_writes_a_png(sample_dir, tmp_path):
    out = tmp_path / "grid" / "aug.png"
    proc = run_cli(
        "data/show_augmentation.py",
        "--rec",
        str(sample_dir / "train.rec"),
        "--num",
        "6",
        "--out",
        str(out),
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in out.parent.iterdir()] == ["aug.png"]


def test_show_augmentation_bad_rec_is_one_line(tmp_path):
    proc = run_cli(
        "data/show_augmentation.py",
        "--rec",
        str(tmp_path / "none.rec"),
        "--out",
        str(tmp_path / "a.png"),
    )
    assert proc.returncode == 1
    assert proc.stderr.strip().startswith("error: ") and "none.rec" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "a.png").exists()


def test_multi_chunk_file_shards_stay_complete(tmp_path):
    # > 2 shuffle chunks (8 MB each): chunk order and record order change per epoch, and
    # every epoch of every shard still holds all of its records exactly once.
    import mxnet as mx

    rng = np.random.RandomState(0)
    path, n = tmp_path / "big.rec", 220
    rec = mx.recordio.MXIndexedRecordIO(str(tmp_path / "big.idx"), str(path), "w")
    lst = []
    for i in range(n):
        label = [4, 6, 300, 300, 1, 0.1 + i / 1000, 0.2, 0.6, 0.7, 0]
        header = mx.recordio.IRHeader(0, np.array(label, np.float32), i, 0)
        img = rng.randint(0, 256, (300, 300, 3)).astype(np.uint8)
        rec.write_idx(i, mx.recordio.pack_img(header, img, quality=95))
        lst.append("%d\t%s\tx.jpg\n" % (i, "\t".join("%g" % v for v in label)))
    rec.close()
    (tmp_path / "big.lst").write_text("".join(lst))
    assert path.stat().st_size > 2.5 * loader.SHUFFLE_CHUNK_MB * 2**20
    parts = [epoch_ids(str(path), k, 2, seed=5, batch=16) for k in range(2)]
    for epoch in range(2):
        shards = [p[epoch] for p in parts]
        assert sorted(shards[0] + shards[1]) == list(range(n))
    assert parts[0][0] != parts[0][1]
