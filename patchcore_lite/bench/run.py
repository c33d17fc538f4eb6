"""`bench`: per-stage cost, peak memory and accuracy of fit and predict for growing training sets.

Each training-set size runs in a fresh subprocess (`python -m patchcore_lite.bench --worker`), so
the peak resident memory it reports (its own ru_maxrss) belongs to that size alone. Stages:
embedding (image loading + backbone + patch embedding, images/s), memory-bank selection (s),
kNN search only (ms per test image), predict end to end (load + backbone + embed + kNN + map, ms
per test image), fit, fit + predict, and image/pixel AUROC. `--anomalib` adds anomalib's
PatchCore on the same images (see bench_anomalib.py). Timings on a shared machine are noisy:
the load average before and after each run is recorded with it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from ..errors import PatchCoreError
from ..options import MODEL_OPTIONS, add_model_options, model_kwargs
from .common import machine, peak_rss_mb, table, timed

DEFAULT_SIZES = "50,200,1000"
COVER_IMAGES = 100  # coverage against the exact greedy is measured on this many images' patches
COLUMNS = (  # (JSON key, header, format)
    ("n_train", "train", "{:d}"),
    ("memory_bank_size", "bank", "{:d}"),
    ("embed_images_per_s", "embed img/s", "{:.1f}"),
    ("selection", "selection", "{}"),
    ("selection_seconds", "select s", "{:.2f}"),
    ("check_ms_per_image", "check ms/img", "{:.1f}"),
    ("coverage_vs_exact", "cover/exact", "{:.3f}"),
    ("decode_ms_per_image", "decode ms/img", "{:.1f}"),
    ("backbone_ms_per_image", "backbone ms/img", "{:.1f}"),
    ("knn_ms_per_image", "kNN ms/img", "{:.1f}"),
    ("predict_ms_per_image", "predict ms/img", "{:.1f}"),
    ("predict_no_workers_ms_per_image", "no workers", "{:.1f}"),
    ("fit_seconds", "fit s", "{:.1f}"),
    ("fit_predict_seconds", "fit+pred s", "{:.1f}"),
    ("peak_rss_mb", "peak RSS MB", "{:.0f}"),
    ("image_auroc", "img AUROC", "{:.3f}"),
    ("pixel_auroc", "px AUROC", "{:.3f}"),
)


# ---- data --------------------------------------------------------------------------------------

def parse_sizes(text: str) -> list[int]:
    """'50,200,1000' -> [50, 200, 1000]; each size >= 2 (PatchCore needs two good images)."""
    try:
        sizes = [int(s) for s in str(text).split(",") if s.strip()]
    except ValueError:
        raise PatchCoreError(f"--sizes: expected comma-separated integers, got '{text}'")
    if not sizes or min(sizes) < 2:
        raise PatchCoreError(f"--sizes: each size must be >= 2, got '{text}'")
    return sizes


def embedded_bench_data(category: str, n_train: int, n_test: int, seed: int = 0,
                        root: str | Path | None = None) -> Path:
    """A category of the embedded set with >= n_train training images, generated on first use.

    Kept apart from the demo's data (bench-seed<S>/), since it is larger; regenerated only when it
    has too few training images or another test-set size.
    """
    from .. import __version__
    from ..datasets.cache import home
    from ..datasets.synth import generate

    root = Path(root) if root else home() / f"bench-seed{seed}"
    cat, stamp = root / category, root / category / ".bench.json"
    have = json.loads(stamp.read_text()) if stamp.is_file() else {}
    if (have.get("version") == __version__ and have.get("n_test") == n_test
            and have.get("n_train", 0) >= n_train):
        return cat
    print(f"bench: generating {category} ({n_train} train, {n_test} test images) in {root}",
          file=sys.stderr, flush=True)
    generate(root, seed=seed, n_train=n_train, n_test=n_test, categories=[category])
    stamp.write_text(json.dumps(dict(version=__version__, n_train=n_train, n_test=n_test)))
    return cat


def bench_data(data: str | None, category: str | None, sizes: list[int], n_test: int,
               seed: int) -> Path:
    """The category folder to benchmark: `data` as given, else the embedded set's category."""
    from ..data import good_images, test_samples
    from ..datasets.synth import CATEGORIES

    if data is None:
        category = category or CATEGORIES[0]
        if category not in CATEGORIES:
            raise PatchCoreError(f"--category: unknown '{category}' (one of {CATEGORIES})")
        return embedded_bench_data(category, max(sizes), n_test, seed)
    cat = Path(data) / category if category else Path(data)
    test_samples(cat)  # layout errors first
    have = len(good_images(cat))
    if have < max(sizes):
        raise PatchCoreError(f"--sizes: {cat}/train/good has {have} images, fewer than "
                             f"{max(sizes)}; use smaller sizes")
    return cat


# ---- one size, in a subprocess ------------------------------------------------------------------

def knn_seconds(model, feats) -> float:
    """Time of the nearest-neighbour search alone for test features (N, h, w, D), as predict
    runs it (the exact search with the bank's cached bound; faiss indexing the bank)."""
    from .. import ann

    q = feats.reshape(-1, feats.shape[-1])
    if model.config.search == "faiss":
        return timed(ann.knn, q, model.bank.patches, model.config.k)[1]
    return timed(model.nearest, q, model.config.k)[1]


def coverage_vs_exact(model, train: list) -> float | None:
    """Coverage of the fit's selection algorithm on the patches of up to COVER_IMAGES training
    images (evenly spaced), over the exact greedy's on the same patches: 1.0 is as good as exact,
    higher is worse. The exact greedy is too slow on a whole large set; the cells it is compared
    with there are the same size as in the fit."""
    from .. import sampling

    c, how = model.config, model.info.get("selection")
    if how in (None, "none"):
        return None
    images = train[::max(1, len(train) // COVER_IMAGES)][:COVER_IMAGES]
    x = model.features(images, progress=False).reshape(-1, model.info["embed_dim"])  # (N, D)
    m = sampling.n_keep(len(x), c.sampling_ratio)
    exact, picks = (sampling.select(x, m, h, c.seed, c.proj_dim, progress=False)
                    for h in ("coreset-exact", how))
    return sampling.coverage(x, picks) / sampling.coverage(x, exact)


def stage_ms(model, paths: list) -> dict:
    """Decoding alone (one thread) and backbone + embedding alone (images already decoded),
    ms per test image; a tiled model's backbone figure covers all tiles of an image."""
    import torch

    from .. import tiling
    from ..data import ImageSet

    tile = model.config.tile
    ds = ImageSet(paths, 0 if tile else model.config.resize, 0 if tile else model.config.crop)
    decoded, decode_s = timed(lambda: [ds[i] for i in range(len(ds))])
    c = model.config
    batches = ([t for x in decoded for t, _ in tiling.batches(
        x, tiling.layout(tuple(x.shape[-2:]), c), c, c.batch_size)] if tile else
               list(torch.stack(decoded).split(c.batch_size)))
    with torch.inference_mode():
        model.embed(batches[0][:1])  # warm-up
        _, embed_s = timed(lambda: [model.embed(b) for b in batches])
    n = len(paths)
    return dict(decode_ms_per_image=1000 * decode_s / n, backbone_ms_per_image=1000 * embed_s / n,
                n_tiles_per_image=sum(len(b) for b in batches) / n if tile else None)


def worker(spec: dict) -> dict:
    """Fit on the first n_train good images and score the test set; timings, memory, AUROC."""
    import torch

    from ..data import good_images, test_samples
    from ..evaluation.protocol import mask_set, score_test_set
    from ..model import PatchCore

    if spec.get("threads"):
        torch.set_num_threads(spec["threads"])
    load0 = os.getloadavg()[0]
    model = PatchCore(progress=False, **spec["model"])
    if spec.get("state_dict_out"):
        torch.save(model.net.state_dict(), spec["state_dict_out"])
    base_rss = peak_rss_mb()
    train = good_images(spec["data"])[:spec["n_train"]]
    samples = test_samples(spec["data"])
    paths = [s.path for s in samples]
    _, fit_s = timed(model.fit, train)
    fit_rss = peak_rss_mb()
    if model.bank.patches.device.type == "cpu":
        model.bank.bound()  # computed once per model: not part of either predict timing
    workers, model.workers = model.workers, 0
    _, serial_s = timed(model.predict, paths)
    model.workers = workers
    (scores, amaps), predict_s = timed(model.predict, paths)
    stages = stage_ms(model, paths)
    knn_s = knn_seconds(model, model.features(paths))
    masks = mask_set(samples, model)  # original size for tiled models
    peak = peak_rss_mb()  # before the coverage check, which embeds images again
    cover = coverage_vs_exact(model, train) if spec.get("coverage", True) else None
    info, n = model.info, len(paths)
    return dict(
        n_train=info["n_train"], n_test=n, n_patches=info["n_patches"],
        memory_bank_size=info["memory_bank_size"], embed_dim=info["embed_dim"],
        embed_images_per_s=info["n_train"] / info["embed_seconds"],
        embed_seconds=info["embed_seconds"], selection_seconds=info["sampling_seconds"],
        selection=info.get("selection"), coverage_vs_exact=cover,
        check_ms_per_image=1000 * info["check_seconds"] / info["train_checked"],
        train_suspects=len(info["train_suspects"]),
        streamed=info.get("streamed", False),
        knn_ms_per_image=1000 * knn_s / n, predict_ms_per_image=1000 * predict_s / n,
        predict_no_workers_ms_per_image=1000 * serial_s / n, **stages,
        fit_seconds=fit_s, predict_seconds=predict_s, fit_predict_seconds=fit_s + predict_s,
        peak_rss_mb=peak, fit_peak_rss_mb=fit_rss, baseline_rss_mb=base_rss,
        **{k: v for k, v in score_test_set(samples, scores, amaps, masks).items()
           if k in ("image_auroc", "pixel_auroc", "pro")},
        weights=model.weights_used, model=model.describe(), search=model.config.search,
        torch_threads=torch.get_num_threads(), loadavg_before=load0,
        loadavg_after=os.getloadavg()[0])


def run_size(spec: dict, timeout: float | None = None) -> dict:
    """Run `worker(spec)` in a fresh Python process and return its result."""
    proc = subprocess.run([sys.executable, "-m", "patchcore_lite.bench.run", "--worker"],
                          input=json.dumps(spec), stdout=subprocess.PIPE,
                          text=True, timeout=timeout)
    if proc.returncode != 0:
        raise PatchCoreError(f"bench: the run with {spec['n_train']} training images failed "
                             f"(exit {proc.returncode}); see the messages above")
    return json.loads(proc.stdout.strip().splitlines()[-1])


# ---- the table ----------------------------------------------------------------------------------

# ---- the verb -----------------------------------------------------------------------------------

def add_options(p) -> None:
    """Options of `python -m patchcore_lite bench` (argparse parser `p`): the model options of
    `fit` (weights default to none here), then the benchmark's own."""
    p.add_argument("--data", default=None, help="category folder (default: the embedded set, "
                   "generated with enough training images)")
    p.add_argument("--category", default=None, help="embedded category (default: the first)")
    add_model_options(p, weights="none")
    p.add_argument("--sizes", default=DEFAULT_SIZES, help="training-set sizes, comma-separated")
    p.add_argument("--n-test", type=int, default=80, help="test images of the embedded set")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    p.add_argument("--json", default=None, help="write the full record here")
    p.add_argument("--image-size", default=None, help="rewrite the embedded category at N "
                   "or WxH pixels first (900: MVTec-like photos; 900x2250: tall parts)")
    p.add_argument("--no-coverage", action="store_true", help="skip the coverage check "
                   "against the exact greedy (slow on large images)")
    p.add_argument("--ray", default=None, metavar="ADDRESS",
                   help="run each size as a task on this Ray cluster (auto: the local one)")
    p.add_argument("--anomalib", action="store_true",
                   help="also run anomalib's PatchCore (installed into its own venv)")
    p.add_argument("--anomalib-venv", default=".bench-venv-anomalib")
    p.add_argument("--anomalib-max-size", type=int, default=50,
                   help="largest training set anomalib selects its own coreset for (about 2 min "
                        "at 50 images on 2 cores, 30 at 200); above it, only its predict time")


def _rows(specs: list[dict], ray: str | None):
    """Each size's result, in order: fresh subprocesses here, or tasks on a Ray cluster."""
    if ray is None:
        yield from map(run_size, specs)
        return
    from .ray_runner import run

    done = {}
    for i, ok, value in run(worker, specs, ray, threads=specs[0]["threads"] or 1):
        if not ok:
            raise PatchCoreError(f"bench: the run with {specs[i]['n_train']} training images "
                                 f"failed on Ray: {value}")
        done[i] = value
    yield from (done[i] for i in range(len(specs)))


def command_line(a) -> str:
    """The bench command with every option spelled out (what the record was measured with)."""
    words = ["python -m patchcore_lite bench"]
    flags = {o.kwarg: o.flag for o in MODEL_OPTIONS}
    for key, value in sorted(vars(a).items()):
        if key in ("verb", "given") or value is None or value is False:
            continue
        flag = flags.get(key, "--" + key.replace("_", "-"))
        words.append(flag if value is True else f"{flag} {value}")
    return " ".join(words)


def _write(path: str | None, record: dict) -> None:
    if path:
        from .. import io  # torch loads only when there is something to write

        io.write_text(path, json.dumps(record, indent=2) + "\n")


def run(a, log=print) -> dict:
    """Run every size (and anomalib beside it with --anomalib); print tables, return the record."""
    sizes = parse_sizes(a.sizes)
    if a.anomalib:
        from .anomalib import check_comparable

        check_comparable(a)
    data = bench_data(a.data, a.category, sizes, a.n_test, a.seed)
    if a.image_size:
        from .sets import parse_shape, scaled_copy

        w, h = parse_shape(a.image_size)
        data = scaled_copy(data, data.parent / f"{data.name}-{w}x{h}", w, h)
    record = dict(command=command_line(a), data=str(data), sizes=sizes, machine=machine(),
                  settings=model_kwargs(a), runs=[])
    log(f"bench: {data}, sizes {sizes}, {a.backbone} weights={a.weights} sampling={a.sampling} "
        f"ratio={a.sampling_ratio} search={a.search} device={a.device}")
    tmp = Path(tempfile.mkdtemp(prefix="pclite-bench-")) / "backbone.pt" if a.anomalib else None
    specs = [dict(data=str(data), n_train=n, model=model_kwargs(a), threads=a.threads,
                  state_dict_out=str(tmp) if tmp else None, coverage=not a.no_coverage)
             for n in sizes]
    for n, row in zip(sizes, _rows(specs, a.ray)):
        record["runs"].append(row)
        _write(a.json, record)  # a later size that fails or is stopped keeps this one
        log(f"  {n} images: fit {row['fit_seconds']:.1f} s, predict "
            f"{row['predict_ms_per_image']:.0f} ms/img, peak RSS {row['peak_rss_mb']:.0f} MB")
    record["weights"] = record["runs"][0]["weights"]
    log(f"\npatchcore-lite ({record['runs'][0]['model']}; search {a.search}):")
    log(table(record["runs"], COLUMNS))
    _write(a.json, record)  # ours is kept even if the anomalib side fails
    if a.anomalib:
        from .anomalib import side_by_side

        record["anomalib"] = []
        try:
            side_by_side(a, data, record["runs"], tmp, log, record["anomalib"],
                         lambda: _write(a.json, record))
        finally:
            shutil.rmtree(tmp.parent, ignore_errors=True)
    if a.json:
        log(f"\nwrote {a.json}")
    return record


def _worker_main() -> None:
    """Entry point of the per-size subprocess: spec JSON on stdin, result JSON on stdout."""
    spec = json.loads(sys.stdin.read())
    result = worker(spec)
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    if sys.argv[1:] == ["--worker"]:
        _worker_main()
    else:
        sys.exit("usage: python -m patchcore_lite bench ... (this module's --worker is internal)")
