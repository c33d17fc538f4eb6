"""Greedy coreset against a naive O(N^2) greedy; fast mode against exact mode and random."""

import pytest
import torch

from patchcore_lite import PatchCoreError, bounds, coreset_cells, sampling

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


def naive_greedy(features, ratio, proj_dim, seed):
    """Textbook k-center greedy, float64: full distance matrix, min-distance vector, argmax."""
    x = sampling.project(features, proj_dim, seed).double()
    n = x.shape[0]
    m = max(1, min(n, round(n * ratio)))
    dist = ((x[:, None, :] - x[None, :, :]) ** 2).sum(-1)  # (N, N)
    mind = torch.full((n,), float("inf"), dtype=torch.float64)
    i = int(torch.randint(n, (1,), generator=torch.Generator().manual_seed(seed)))
    chosen = []
    for _ in range(m):
        chosen.append(i)
        mind = torch.minimum(mind, dist[i])
        i = int(mind.argmax())
    return chosen


def clustered(n_big=400, n_small=6, n_rare=8, d=32, seed=0):
    """A few big tight clusters plus many small far-away ones that random sampling misses."""
    g = torch.Generator().manual_seed(seed)
    parts = []
    for _ in range(4):
        parts.append(torch.randn(n_big, d, generator=g) * 0.3 + torch.randn(d, generator=g) * 3)
    for _ in range(n_rare):
        parts.append(torch.randn(n_small, d, generator=g) * 0.3 + torch.randn(d, generator=g) * 6)
    x = torch.cat(parts)
    return x[torch.randperm(len(x), generator=g)]


def rand(n=300, d=64, seed=0):
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed))


def pick(x, ratio, proj_dim=None, seed=0, method="coreset"):
    """sampling.select at a ratio, as the memory bank calls it."""
    return sampling.select(x, sampling.n_keep(len(x), ratio), method, seed, proj_dim,
                           progress=False)


def textbook_loop(x, ratio, proj_dim=None, seed=0):
    """The textbook loop (greedy_exact) in float64 from select's seeded start."""
    start = int(torch.randint(len(x), (1,), generator=torch.Generator().manual_seed(seed)))
    return sampling.greedy_exact(sampling.project(x, proj_dim, seed).double(),
                                 sampling.n_keep(len(x), ratio), start)


def cells(x, ratio, cell_size, seed=0):
    """The fast cells mode with cells of at most cell_size patches."""
    old, sampling.CELL_SIZE = sampling.CELL_SIZE, cell_size
    try:
        return pick(x, ratio, seed=seed, method="coreset-cells")
    finally:
        sampling.CELL_SIZE = old


@pytest.mark.parametrize("proj_dim", [16, None])
@pytest.mark.parametrize("seed", [0, 3])
def test_exact_coreset_equals_naive_greedy(proj_dim, seed):
    x = rand(seed=seed)
    got = textbook_loop(x, 0.1, proj_dim, seed)
    assert got.tolist() == naive_greedy(x, 0.1, proj_dim, seed)


@pytest.mark.parametrize("data", ["random", "clustered", "duplicates"])
@pytest.mark.parametrize("ratio", [0.1, 0.3])
def test_default_coreset_equals_naive_greedy(data, ratio):
    """The fast float32 default picks the textbook sequence (seeds without near-ties)."""
    x = {"random": rand(), "clustered": clustered(n_big=100),
         "duplicates": torch.cat([rand(200), rand(200)[:80]])}[data]  # flat image areas
    for proj_dim in (16, None):
        got = pick(x, ratio, proj_dim, 0)
        assert got.tolist() == naive_greedy(x, ratio, proj_dim, 0)


@pytest.mark.parametrize("data", ["random", "clustered", "duplicates"])
@pytest.mark.parametrize("bound_dim", [1, 4, 64])
def test_pruned_loop_in_float64_equals_naive_greedy(data, bound_dim):
    """The pruning only skips patches that provably cannot move: same picks as the textbook loop."""
    x = {"random": rand(), "clustered": clustered(n_big=100),
         "duplicates": torch.cat([rand(200), rand(200)[:80]])}[data]
    n = len(x)
    start = int(torch.randint(n, (1,), generator=torch.Generator().manual_seed(0)))
    got = sampling.greedy_pruned(x.double(), round(0.2 * n), start, lambda _: None, bound_dim)
    assert got.tolist() == naive_greedy(x, 0.2, None, 0)


def test_fast_coreset_covers_like_exact():
    x = clustered()
    fast = pick(x, 0.05, 16, 0)
    exact = textbook_loop(x, 0.05, 16, 0)
    assert len(fast) == len(exact)
    assert sampling.coverage(x, fast) <= 1.05 * sampling.coverage(x, exact)


def test_coreset_covers_far_better_than_random():
    x = clustered()
    core = pick(x, 0.02, 16, 0)
    random = sampling.random_subsample(len(x), 0.02, seed=0)
    assert len(core) == len(random)
    assert 2 * sampling.coverage(x, core) < sampling.coverage(x, random)


def test_coreset_is_deterministic():
    x = rand()
    a = pick(x, 0.1, 16, seed=5)
    b = pick(x.clone(), 0.1, 16, seed=5)
    assert torch.equal(a, b)
    assert len(set(a.tolist())) == len(a)


@pytest.mark.parametrize("ratio", [0.0, -0.1, 1.5])
def test_ratio_out_of_range_is_refused(ratio):
    with pytest.raises(PatchCoreError, match="ratio"):
        pick(rand(), ratio)
    with pytest.raises(PatchCoreError, match="ratio"):
        sampling.random_subsample(100, ratio)


@pytest.mark.parametrize("textbook", [False, True])
def test_ratio_one_keeps_all(textbook):
    x = rand(n=120, d=8)
    got = textbook_loop(x, 1.0) if textbook else pick(x, 1.0)
    assert sorted(got.tolist()) == list(range(120))
    assert sampling.random_subsample(120, 1.0).tolist() == list(range(120))


def test_random_subsample_size_and_determinism():
    a = sampling.random_subsample(1000, 0.1, seed=1)
    assert len(a) == 100 and len(set(a.tolist())) == 100
    assert 0 <= int(a.min()) and int(a.max()) < 1000
    assert torch.equal(a, sampling.random_subsample(1000, 0.1, seed=1))
    assert not torch.equal(a, sampling.random_subsample(1000, 0.1, seed=2))
    assert len(sampling.random_subsample(10, 0.001)) == 1  # at least one patch


def test_subsample_dispatch():
    x = rand(n=50, d=8)
    assert pick(x, 0.2, method="none").tolist() == list(range(50))
    assert len(pick(x, 0.2, method="coreset")) == 10
    with pytest.raises(PatchCoreError, match="sampling"):
        pick(x, 0.2, method="kmeans")


@cuda
def test_coreset_cuda_equals_cpu():
    x = rand()
    cpu = textbook_loop(x, 0.1, 16, 0)
    gpu = textbook_loop(x.cuda(), 0.1, 16, 0)
    assert gpu.tolist() == cpu.tolist()


def test_pruned_loop_torch_path_equals_numpy_path(monkeypatch):
    """The loop runs on tensors on a GPU: check that path on the CPU against the numpy one."""
    x = clustered(n_big=100)
    start = 7
    via_numpy = sampling.greedy_pruned(x.double(), 60, start, lambda _: None, 4)
    monkeypatch.setattr(bounds, "arrays", lambda *t: (torch, list(t)))
    via_torch = sampling.greedy_pruned(x.double(), 60, start, lambda _: None, 4)
    assert via_torch.tolist() == via_numpy.tolist()


@cuda
def test_default_coreset_cuda_matches_cpu():
    x = clustered()
    cpu = pick(x, 0.05)
    gpu = pick(x.cuda(), 0.05)
    assert gpu.tolist()[:20] == cpu.tolist()[:20]
    assert sampling.coverage(x, gpu) <= 1.01 * sampling.coverage(x, cpu)


def test_pruned_loop_in_small_chunks_picks_the_same(monkeypatch):
    """Candidates are recomputed CHUNK rows at a time (bounded memory): same picks."""
    x = clustered(n_big=100)
    whole = sampling.greedy_pruned(x.double(), 60, 7, lambda _: None, 4)
    monkeypatch.setattr(sampling, "CHUNK", 7)
    assert sampling.greedy_pruned(x.double(), 60, 7, lambda _: None, 4).tolist() == whole.tolist()


# ---- the fast default (greedy_cells) against the exact greedy ---------------------------------

def dataset(name, n=3000):
    """A few thousand patches: random, clustered, or with many exact duplicates (flat areas)."""
    if name == "random":
        return rand(n, 16)
    if name == "clustered":
        return clustered(n_big=n // 5, n_rare=40, d=16)
    base = rand(n // 3, 16, seed=1)
    return torch.cat([base, base, base[: n - 2 * len(base)]])[torch.randperm(n)]


@pytest.mark.parametrize("data", ["random", "clustered", "duplicates"])
@pytest.mark.parametrize("cell_size", [800, 1500])
def test_fast_coreset_covers_within_10_percent_of_exact(data, cell_size):
    """The cells' bound: coverage of the fast mode <= 1.1 x the exact greedy's, 2-4 cells of
    about 100-150 picks each (the default's cells hold 8,192 patches: 819 picks at 10%)."""
    x = dataset(data)
    fast = cells(x, 0.1, cell_size)
    exact = pick(x, 0.1, method="coreset-exact")
    m = sampling.n_keep(len(x), 0.1)
    assert len(fast) == len(exact) == m and len(set(fast.tolist())) == m
    assert sampling.coverage(x, fast) <= 1.1 * sampling.coverage(x, exact)


def test_cells_partition_every_patch_once():
    x = dataset("clustered")
    parts = coreset_cells.split(x, 250)
    assert len(parts) > 8 and max(len(c) for c in parts) <= 250
    assert sorted(torch.cat(parts).tolist()) == list(range(len(x)))


def test_default_is_the_fast_mode_and_exact_is_coreset_exact():
    x = dataset("random", 2000)
    fast = pick(x, 0.1, method="coreset")
    exact = pick(x, 0.1, method="coreset-exact")
    assert fast.tolist() == exact.tolist()  # N <= CELL_SIZE: one cell, the exact loop
    by_cells = cells(x, 0.1, 200)
    assert by_cells.tolist() != exact.tolist() and len(by_cells) == len(exact)


@pytest.mark.parametrize("n, ratio, cell_size", [(1, 0.1, 1), (3, 0.5, 1), (50, 0.1, 5)])
def test_fast_coreset_tiny_inputs(n, ratio, cell_size):
    """Fewer picks than cells fall back to the exact loop; a single patch is kept."""
    x = rand(n, 4)
    got = cells(x, ratio, cell_size)
    assert got.tolist() == pick(x, ratio, method="coreset-exact").tolist()


def test_fast_coreset_ratio_one_and_all_duplicates():
    x = dataset("clustered", 1000)
    got = cells(x, 1.0, 100)
    assert sorted(got.tolist()) == list(range(len(x)))
    same = torch.ones(1000, 8)  # every patch identical: any 100 distinct ones cover exactly
    got = cells(same, 0.1, 100)
    assert len(set(got.tolist())) == 100 and sampling.coverage(same, got) == 0.0


def test_fast_coreset_gives_spread_out_cells_more_picks(monkeypatch):
    """Cells all start with part of their share; those still far from their picks continue, so
    the wide cluster's cells end with most picks, as the global greedy spends them."""
    g = torch.Generator().manual_seed(0)
    tight, wide = torch.randn(1500, 8, generator=g) * 0.01, torch.randn(1500, 8, generator=g) * 5
    x = torch.cat([tight, wide + 100])
    steps = torch.zeros(8, dtype=torch.long)  # picks run per cell
    run = coreset_cells.run

    def counting(s, which, n, tick):
        steps[which] += n
        return run(s, which, n, tick)
    monkeypatch.setattr(coreset_cells, "run", counting)
    fast = cells(x, 0.1, 500)
    kept_wide = int((fast >= 1500).sum())
    few, many = steps.sort().values.split(4)  # 4 tight cells, 4 wide ones
    assert kept_wide > 0.9 * len(fast) and many.min() > 2 * few.max()
    exact = pick(x, 0.1, method="coreset-exact")
    assert sampling.coverage(x, fast) <= 1.1 * sampling.coverage(x, exact)
    assert steps.sum() <= 1.5 * len(fast)  # tight cells stop after their first round


def test_fast_coreset_torch_path_equals_numpy_path(monkeypatch):
    """The cells run the exact loop on tensors on a GPU: that path on the CPU picks the same."""
    x = dataset("clustered", 1500)
    via_numpy = cells(x, 0.1, 300)
    monkeypatch.setattr(bounds, "arrays", lambda *t: (torch, list(t)))
    via_torch = cells(x, 0.1, 300)
    assert via_torch.tolist() == via_numpy.tolist()


@cuda
def test_fast_coreset_cuda_covers_like_cpu():
    x = dataset("clustered")
    cpu = cells(x, 0.1, 500)
    gpu = cells(x.cuda(), 0.1, 500)
    assert len(gpu) == len(cpu)
    assert sampling.coverage(x, gpu.cpu()) <= 1.02 * sampling.coverage(x, cpu)


def test_default_coreset_uses_cells_only_above_exact_up_to(monkeypatch):
    x = dataset("random", 2000)
    exact = pick(x, 0.1, method="coreset-exact")
    monkeypatch.setattr(sampling, "CELL_SIZE", 1000)
    assert pick(x, 0.1, method="coreset").tolist() == exact.tolist()
    monkeypatch.setattr(sampling, "EXACT_UP_TO", 1000)  # now x is "large": cells
    fast = pick(x, 0.1, method="coreset")
    assert fast.tolist() != exact.tolist()
    assert sampling.coverage(x, fast) <= 1.1 * sampling.coverage(x, exact)


def test_algorithm_names_what_select_runs(monkeypatch):
    n = sampling.EXACT_UP_TO
    assert sampling.algorithm("coreset", n) == "coreset-exact"
    assert sampling.algorithm("coreset", n + 1) == "coreset-cells"
    assert sampling.algorithm("coreset-exact", 10 * n) == "coreset-exact"
    assert [sampling.algorithm(m, 5) for m in ("none", "random")] == ["none", "random"]
    with pytest.raises(PatchCoreError, match="--sampling"):
        sampling.algorithm("kmeans", 5)


@pytest.mark.parametrize("method", ["coreset", "coreset-exact"])
def test_select_continues_the_greedy_from_known_patches(method):
    """fit --append: the greedy starts from the min-distances to the bank, as if the bank's
    patches had been picked first (against the textbook loop given those min-distances)."""
    x, known = rand(200, 16, seed=1), rand(40, 16, seed=2)
    got = sampling.select(x, 30, method, known=known, progress=False)
    mind = torch.cdist(x.double(), known.double()).min(1).values ** 2  # (N,)
    assert got.tolist() == sampling.greedy_exact(x.double(), 30, int(mind.argmax()),
                                                 mind=mind).tolist()


def test_random_select_is_a_seeded_sorted_subset():
    x = rand(500, 4)
    got = sampling.select(x, 50, "random", seed=3)
    assert got.tolist() == sorted(set(got.tolist())) and len(got) == 50
    assert torch.equal(got, sampling.random_subsample(500, 0.1, seed=3))
