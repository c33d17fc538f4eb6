"""Command line: demo, synth, fit, predict, evaluate (python -m patchcore_lite VERB ...).

Errors in user input are printed as one line naming the file or argument, with exit code 2.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

from .errors import PatchCoreError

DEFAULT_DEMO_OUT = "runs/demo"


def _model_options(p: argparse.ArgumentParser) -> None:
    """Options shared by fit and evaluate (DESIGN.md section 4)."""
    p.add_argument("--backbone", default="resnet18")
    p.add_argument("--layers", default="layer2,layer3", help="comma-separated module names")
    p.add_argument("--weights", default="auto", help="auto, imagenet, none or a state-dict file")
    p.add_argument("--sampling", default="coreset", help="none, random or coreset")
    p.add_argument("--ratio", type=float, default=0.1, help="fraction of patches kept")
    p.add_argument("--k", type=int, default=1, help="neighbours averaged for a patch's score")
    p.add_argument("--reweight", action="store_true", help="paper Eq. 7 image-score reweighting")
    p.add_argument("--reweight-b", type=int, default=9)
    p.add_argument("--embed-dim", type=int, default=None, help="reduce patches to this dim")
    p.add_argument("--resize", type=int, default=256)
    p.add_argument("--crop", type=int, default=224, help="centre crop; 0 keeps the whole image")
    p.add_argument("--device", default="cpu")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--search", default="exact", help="kNN backend: exact or faiss (extra)")


def _model_kwargs(a: argparse.Namespace) -> dict:
    return dict(backbone=a.backbone, layers=a.layers, weights=a.weights, sampling=a.sampling,
                sampling_ratio=a.ratio, k=a.k, reweight=a.reweight, reweight_b=a.reweight_b,
                embed_dim=a.embed_dim, resize=a.resize, crop=a.crop, device=a.device,
                seed=a.seed, batch_size=a.batch_size, search=a.search)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m patchcore_lite", description=__doc__)
    sub = p.add_subparsers(dest="verb", required=True)

    d = sub.add_parser("demo", help="generate the embedded data set, fit, evaluate, write a report")
    d.add_argument("--out", default=DEFAULT_DEMO_OUT)
    d.add_argument("--weights", default="auto")
    d.add_argument("--device", default="cpu")
    d.add_argument("--seed", type=int, default=0)
    d.add_argument("--n-train", type=int, default=None, help="smaller data set for a quick look")
    d.add_argument("--n-test", type=int, default=None)

    s = sub.add_parser("synth", help="write the embedded data set (MVTec layout)")
    s.add_argument("data_dir")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--n-train", type=int, default=None)
    s.add_argument("--n-test", type=int, default=None)

    f = sub.add_parser("fit", help="fit a model on good images and save it")
    f.add_argument("category_dir", help="MVTec category folder or a folder of good images")
    f.add_argument("--model", required=True, help="output model file (.pclite)")
    _model_options(f)

    pr = sub.add_parser("predict", help="score images with a saved model")
    pr.add_argument("--model", required=True)
    pr.add_argument("images", nargs="+", help="image files or folders")
    pr.add_argument("--out", default=None, help="write a heatmap overlay PNG per image here")
    pr.add_argument("--threshold", type=float, default=None)
    pr.add_argument("--json", default=None, help="write JSON lines here instead of stdout")
    pr.add_argument("--device", default="cpu")
    pr.add_argument("--batch-size", type=int, default=16)

    e = sub.add_parser("evaluate", help="score a category's test set (MVTec protocol)")
    e.add_argument("category_dir")
    e.add_argument("--model", default=None, help="saved model; else fit on train/good")
    e.add_argument("--json", default=None)
    e.add_argument("--out", default=None, help="write a report (index.html and figures) here")
    _model_options(e)

    from .bench import add_options  # stdlib only at import: cheap

    add_options(sub.add_parser("bench", help="time and size fit/predict for growing training sets"))
    return p


def cmd_synth(a: argparse.Namespace) -> None:
    from .synth import generate

    t0 = time.perf_counter()
    cats = generate(a.data_dir, seed=a.seed, n_train=a.n_train, n_test=a.n_test)
    print(f"wrote {len(cats)} categories to {a.data_dir} in {time.perf_counter() - t0:.1f} s: "
          + ", ".join(c.name for c in cats))


def cmd_fit(a: argparse.Namespace) -> None:
    from .data import good_images
    from .model import PatchCore

    images = good_images(a.category_dir)
    model = PatchCore(**_model_kwargs(a))
    _say(f"model: {model.describe()}")
    model.fit(images)
    path = model.save(a.model)
    _say(f"saved {path}: {model.info['memory_bank_size']} bank patches from "
         f"{model.info['n_train']} images, threshold {model.threshold:.4g}, "
         f"weights {model.weights_used}")


def _expand(paths: list[str]) -> list[Path]:
    from .data import list_images

    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            out += list_images(p)
        elif p.is_file():
            out.append(p)
        else:
            raise PatchCoreError(f"{p}: no such file or folder")
    return out


def cmd_predict(a: argparse.Namespace) -> None:
    from .model import PatchCore

    model = PatchCore.load(a.model, device=a.device)
    model.config.batch_size = a.batch_size
    paths = _expand(a.images)
    thr = model.threshold if a.threshold is None else a.threshold
    scores, maps = model.predict(paths)
    lines = [json.dumps(dict(path=str(p), score=float(s), threshold=float(thr),
                             anomalous=bool(s >= thr), weights=model.weights_used))
             for p, s in zip(paths, scores)]
    if a.out:
        _write_overlays(model, paths, scores, maps, thr, Path(a.out))
    text = "\n".join(lines) + "\n"
    if a.json:
        _atomic_write(Path(a.json), text)
    else:
        sys.stdout.write(text)


def _write_overlays(model, paths, scores, maps, thr, out: Path) -> None:
    from . import plots
    from .data import load_image

    c, (lo, hi) = model.config, model.map_range
    for p, s, m in zip(paths, scores, maps):
        img = load_image(p, c.resize, c.crop).permute(1, 2, 0).numpy()
        verdict = "ANOMALOUS" if s >= thr else "good"
        fig = plots.overlay(img, m, vmin=lo, vmax=hi, title=f"{p.name}: {s:.3g} ({verdict})",
                            subtitle=model.describe())
        plots.save(fig, out / f"{p.stem}_overlay.png")


def cmd_evaluate(a: argparse.Namespace) -> None:
    from .evaluate import evaluate
    from .model import PatchCore

    model = PatchCore.load(a.model, device=a.device) if a.model else None
    kwargs = {} if model else _model_kwargs(a)
    if model is None:
        from .data import test_samples

        test_samples(a.category_dir)  # layout errors before the "fitting" message
        _say(f"fitting on {a.category_dir}/train/good")
    ev = evaluate(a.category_dir, model, **kwargs)
    text = json.dumps(ev.summary, indent=2)
    if a.json:
        _atomic_write(Path(a.json), text + "\n")
    print(text)
    if a.out:
        from .report import write_report

        _say(f"report: {write_report(a.out, [ev], f'patchcore-lite: {ev.category}')}")


def cmd_demo(a: argparse.Namespace) -> None:
    from .demo import run_demo

    run_demo(Path(a.out), weights=a.weights, device=a.device, seed=a.seed, n_train=a.n_train,
             n_test=a.n_test)


def cmd_bench(a: argparse.Namespace) -> None:
    from .bench import run

    run(a)


def _say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _atomic_write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    tmp.replace(path)


COMMANDS = dict(demo=cmd_demo, synth=cmd_synth, fit=cmd_fit, predict=cmd_predict,
                evaluate=cmd_evaluate, bench=cmd_bench)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    warnings.formatwarning = lambda msg, cat, *rest: f"warning: {msg}\n"
    try:
        COMMANDS[args.verb](args)
    except PatchCoreError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    return 0
