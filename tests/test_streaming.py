"""Fitting in chunks (bank.stream) against the in-memory fit: the same bank with no sampling, and
the expected sizes and a comparable coverage with random sampling and the coreset."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers import TINY_OPTS as TINY

from patchcore_lite import PatchCore, bank, sampling
from patchcore_lite.data import good_images, walk_images


@pytest.fixture
def small_chunks(monkeypatch):
    monkeypatch.setattr(bank, "STREAM_BYTES", 1)  # stream even tiny sets
    monkeypatch.setattr(bank, "CHUNK_BYTES", 2 * 64 * 384 * 4)  # two 8x8 images a chunk


def test_streaming_with_no_sampling_equals_the_in_memory_fit(tiny_category_ro, monkeypatch):
    images = good_images(tiny_category_ro)
    ref = PatchCore(**TINY, sampling="none").fit(images)
    monkeypatch.setattr(bank, "STREAM_BYTES", 1)
    monkeypatch.setattr(bank, "CHUNK_BYTES", 2 * 64 * 384 * 4)
    got = PatchCore(**TINY, sampling="none").fit(images)
    assert got.info["streamed"] and "streamed" not in ref.info
    assert torch.equal(got.bank.patches, ref.bank.patches)
    assert torch.equal(got.bank.image, ref.bank.image) and torch.equal(got.bank.pos, ref.bank.pos)
    assert got.good_scores == pytest.approx(ref.good_scores) and got.threshold == ref.threshold
    test = walk_images([tiny_category_ro / "test"])
    np.testing.assert_allclose(got.predict(test)[0], ref.predict(test)[0], rtol=1e-6)


@pytest.mark.parametrize("method", ["random", "coreset"])
def test_streaming_keeps_the_ratio_of_every_chunk(tiny_category_ro, small_chunks, method):
    images = good_images(tiny_category_ro)
    model = PatchCore(**TINY, sampling=method, sampling_ratio=0.25).fit(images)
    per_chunk = sampling.n_keep(2 * 64, 0.25)
    assert len(model.bank.patches) == 3 * per_chunk  # 6 images, 3 chunks
    assert torch.all(model.bank.image[1:] >= model.bank.image[:-1])  # sorted by image
    assert len(model.good_scores) == len(images)
    if method == "coreset":  # each chunk covered by its own coreset: close to the global one
        monkeypatch = pytest.MonkeyPatch()
        monkeypatch.setattr(bank, "STREAM_BYTES", 2**40)
        full = PatchCore(**TINY, sampling="none").fit(images).bank.patches
        glob = sampling.select(full, sampling.n_keep(len(full), 0.25), "coreset", progress=False)
        radius = float(torch.cdist(full, model.bank.patches).min(1).values.max())
        ref = sampling.coverage(full, glob)
        monkeypatch.undo()
        assert radius <= 1.5 * ref
