import numpy as np
import pytest

from modeling_htla.batching import length_sorted_batches


def test_batches_cover_every_row_once_longest_first():
    lengths = [3, 10, 1, 7, 7, 2, 9]
    batches = length_sorted_batches(lengths, 3)
    assert [len(b) for b in batches] == [3, 3, 1]
    flat = np.concatenate(batches)
    assert sorted(flat.tolist()) == list(range(len(lengths)))
    assert [lengths[i] for i in flat] == sorted(lengths, reverse=True)
    assert flat[2:4].tolist() == [3, 4]  # equal lengths keep input order


def test_batch_size_must_be_positive():
    with pytest.raises(ValueError, match="batch_size"):
        length_sorted_batches([1, 2], 0)
