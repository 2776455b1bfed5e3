import numpy as np
import pytest

from geomae.samplers import ChunkSampler


class Chunks:
    """A dataset of ``n`` items stored in chunks of ``size`` (the last one partial)."""

    def __init__(self, n, size):
        self.n, self.size = n, size

    def __len__(self):
        return self.n

    def chunk_groups(self):
        return np.split(np.arange(self.n), range(self.size, self.n, self.size))


@pytest.mark.parametrize("n", [64, 61])
def test_ranks_are_disjoint_and_cover(n):
    ds = Chunks(n, 8)
    shards = [list(ChunkSampler(ds, num_replicas=2, rank=r, seed=3)) for r in range(2)]
    assert len(shards[0]) == len(shards[1]) == -(-n // 2)
    union = shards[0] + shards[1]
    assert set(union) == set(range(n))
    assert len(union) - len(set(union)) == len(union) - n  # repeats = padding only
    if n % 2 == 0:
        assert not set(shards[0]) & set(shards[1])
    # drop_last: equal shards, no repeats
    shards = [list(ChunkSampler(ds, num_replicas=2, rank=r, drop_last=True)) for r in range(2)]
    assert len(shards[0]) == len(shards[1]) == n // 2
    assert not set(shards[0]) & set(shards[1])


def test_windows_keep_batches_on_few_chunks():
    ds = Chunks(128, 8)
    sampler = ChunkSampler(ds, window=2, seed=0, num_replicas=1, rank=0)
    order = np.array(list(sampler))
    assert sorted(order.tolist()) == list(range(128))
    chunk = order // 8
    for start in range(0, 128, 16):  # each window of 16 tiles mixes exactly 2 chunks
        assert len(set(chunk[start : start + 16])) == 2
    assert not np.array_equal(order, np.arange(128))
    free = np.array(list(ChunkSampler(ds, window=None, seed=0, num_replicas=1, rank=0)))
    assert max(len(set(free[s : s + 16] // 8)) for s in range(0, 128, 16)) > 2


def test_epochs_and_determinism():
    ds = Chunks(40, 8)
    a = ChunkSampler(ds, seed=1, num_replicas=1, rank=0)
    b = ChunkSampler(ds, seed=1, num_replicas=1, rank=0)
    assert list(a) == list(b)
    first = list(a)
    a.set_epoch(1)
    assert list(a) != first and sorted(a) == sorted(first)
    plain = ChunkSampler(ds, shuffle=False, num_replicas=1, rank=0)
    assert list(plain) == list(range(40))


def test_bad_window_and_rank():
    with pytest.raises(ValueError, match="window"):
        ChunkSampler(Chunks(8, 4), window=0, num_replicas=1, rank=0)
    with pytest.raises(ValueError, match="rank 2"):
        ChunkSampler(Chunks(8, 4), num_replicas=2, rank=2)
