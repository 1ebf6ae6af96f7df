"""`hf_diverse.tokens`: tokenizing texts and counting token frequencies."""

import numpy as np
import pytest

from hf_diverse.errors import InvalidParameterError
from hf_diverse.tokens import token_frequencies, tokenize_texts


def test_tokenize_texts_no_special_tokens_and_batching(tok):
    ids = tokenize_texts(["hello world", "", "hello"], tokenizer=tok)
    assert [len(x) for x in ids] == [2, 0, 1]
    assert ids[0][0] == ids[2][0]  # "hello" is one token, no BOS added
    assert all(x.dtype == np.int64 for x in ids)
    one_by_one = tokenize_texts(["hello world", "", "hello"], tokenizer=tok, batch_size=1)
    assert all(np.array_equal(a, b) for a, b in zip(ids, one_by_one, strict=True))


def test_token_frequencies_bincount():
    counts = token_frequencies([np.array([0, 2, 2]), np.array([3]), np.array([], dtype=np.int64)], vocab_size=5)
    assert counts.tolist() == [1, 0, 2, 1, 0]
    with pytest.raises(InvalidParameterError, match="vocab_size=3"):
        token_frequencies([np.array([3])], vocab_size=3)
