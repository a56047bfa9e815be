"""rlhf_pipeline.seeding: seeds are pure functions of their parts, pinned so that no refactor changes them
(a changed seed changes every speech, judge call and sampled target reply that uses it)."""

import hashlib

from rlhf_pipeline.seeding import derive_seed, mix_seed


def test_derive_seed_is_the_first_four_bytes_of_the_sha256_of_the_parts():
    assert derive_seed(0, "r1") == int.from_bytes(hashlib.sha256(b"0/r1").digest()[:4], "big") == 395536403
    assert derive_seed(7, 1) == 3553817977  # >= 2**31: the full 32 bits
    assert derive_seed(1, 2) == derive_seed("1", "2") != derive_seed(2, 1)


def test_mix_seed_drops_the_top_bit():
    assert mix_seed(7, 1) == 3553817977 - 2**31 == 1406334329
    assert mix_seed(0, "r1") == derive_seed(0, "r1")
    assert all(0 <= mix_seed(i) < 2**31 for i in range(100))
