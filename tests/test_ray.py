"""evaluate ROOT --all --ray: the categories as tasks on a local two-CPU Ray cluster give the
table of --jobs 2, a category that fails leaves the others done, and a rerun resumes.

The driver's side (state, errors, resume) is also checked with the tasks run in this process,
which needs no cluster: Ray's own start gives up when its agents start slowly (an overloaded
machine), and the cluster test is then skipped with that reason."""

from __future__ import annotations

import json

import pytest
from conftest import make_category
from test_cli_errors import FAST, run_in_process

TIMINGS = ("fit_seconds", "predict_seconds_per_image")


@pytest.fixture(scope="module")
def cluster():
    """A local cluster of two worker CPUs, started and stopped by this module."""
    ray = pytest.importorskip("ray")
    try:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
                 logging_level="ERROR")
    except Exception as e:  # noqa: BLE001 - Ray's startup limit, not the code under test
        pytest.skip(f"Ray's local cluster did not start: {str(e)[:120]}")
    yield
    ray.shutdown()


@pytest.fixture
def in_process(monkeypatch):
    """Ray tasks run one by one in this process (the driver's logic, without a cluster)."""
    from patchcore_lite.bench import ray_runner

    def run(fn, args, address, threads=1):
        for i, a in enumerate(args):
            yield (i, *ray_runner._call(fn, a, threads))

    monkeypatch.setattr(ray_runner, "run", run)


def _results(state) -> dict:
    """Saved results by category, timings left out (they differ run to run)."""
    out = {}
    for p in sorted(state.glob("*.key.json")):
        r = json.loads(p.read_text())["result"]
        out[p.name.split(".")[0]] = {k: v for k, v in r.items() if k not in TIMINGS}
    return out


def _table_failure_resume(tmp_path):
    """--ray against --jobs 2 on three categories, one failing mid-way, then the rerun."""
    root = tmp_path / "root"
    for i, name in enumerate(("alpha", "beta", "gamma")):
        make_category(root / name, seed=i + 1)
    bad = root / "gamma" / "test" / "broken" / "000.png"
    good_bytes = bad.read_bytes()
    bad.write_bytes(good_bytes[:200])  # truncated: gamma fails after its fit, mid-way
    runs = {}
    for how in (("--jobs", "2"), ("--ray", "auto")):
        out = tmp_path / how[0].strip("-")
        r = run_in_process("evaluate", root, "--all", "--out", out, *how, *FAST)
        assert r.returncode == 2 and "gamma" in r.stderr and "000.png" in r.stderr, r.stderr
        runs[how[0]] = _results(out / "state")
    assert sorted(runs["--ray"]) == ["alpha", "beta"]  # the others are done and saved
    assert runs["--ray"] == runs["--jobs"]
    bad.write_bytes(good_bytes)
    js = tmp_path / "all.json"
    r = run_in_process("evaluate", root, "--all", "--out", tmp_path / "ray", "--ray", "auto",
                       "--json", js, *FAST)
    assert r.returncode == 0 and "2 already done, 1 to run" in r.stderr, r.stderr
    assert sorted(json.loads(js.read_text())["categories"]) == ["alpha", "beta", "gamma"]


def test_ray_table_equals_jobs_failure_and_resume(tmp_path, cluster):
    _table_failure_resume(tmp_path)


def test_driver_state_and_errors_without_a_cluster(tmp_path, in_process):
    _table_failure_resume(tmp_path)


def test_unreadable_data_is_refused_by_the_worker(tmp_path, in_process):
    from patchcore_lite.bench.ray_runner import evaluate_category, run

    job = dict(category=str(tmp_path / "elsewhere"), settings={})
    [(i, ok, message)] = list(run(evaluate_category, [job], "auto"))
    assert (i, ok) == (0, False) and "not readable on Ray node" in message


def test_ray_without_all_is_refused(tiny_category_ro):
    r = run_in_process("evaluate", tiny_category_ro, "--ray", "auto", *FAST)
    assert r.returncode == 2 and "--ray" in r.stderr and "--all" in r.stderr


def test_bench_sizes_as_ray_tasks(tiny_category_ro, tmp_path, in_process):
    from patchcore_lite.apps.cli import main

    out = tmp_path / "bench.json"
    rc = main(["bench", "--data", str(tiny_category_ro), "--sizes", "2,3", "--json", str(out),
               "--ray", "auto", "--no-coverage", *FAST, "--threads", "1"])
    runs = json.loads(out.read_text())["runs"]
    assert rc == 0 and [r["n_train"] for r in runs] == [2, 3]
    assert all(r["memory_bank_size"] == round(0.1 * r["n_patches"]) for r in runs)
