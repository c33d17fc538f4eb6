"""Command line: demo, synth, fit, predict, evaluate (python -m patchcore_lite VERB ...).

Errors in user input are printed as one line naming the file or argument, with exit code 2.
The method (torch) loads with the package; imports inside the verbs (evaluation: scikit-learn and
matplotlib; the data generator: scikit-image; bench; demo) load only for the verb that needs them.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings
from pathlib import Path

from .. import io, regions
from ..config import finite_float, positive_int
from ..data import good_images, load_image, test_samples, walk_images
from ..errors import PatchCoreError
from ..model import PatchCore
from ..options import add_model_options, model_kwargs, saved_model_options
from ..regions import DEFAULT_MIN_AREA

DEFAULT_DEMO_OUT = "runs/demo"


def non_negative_int(text: str) -> int:
    """argparse type: a whole number >= 0."""
    v = int(text)
    if v < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {v}")
    return v


class Parser(argparse.ArgumentParser):
    """argparse, with its errors as one `error:` line (exit 2) like every other user error."""

    def error(self, message: str):
        """Print `error: message` and exit 2 (argparse prints a usage block instead)."""
        print(f"error: {message} (see {self.prog} --help)", file=sys.stderr)
        sys.exit(2)


def build_parser() -> argparse.ArgumentParser:
    """The parser of every verb; its flags and outputs are the public interface (README)."""
    p = Parser(prog="python -m patchcore_lite", description=__doc__)
    sub = p.add_subparsers(dest="verb", required=True)
    _data_verbs(sub)
    _model_verbs(sub)
    from ..bench.run import add_options  # imports only the standard library: a fast start

    add_options(sub.add_parser("bench", help="time and size fit/predict for growing training sets"))
    return p


def _data_verbs(sub) -> None:
    """demo and synth: the embedded data set."""
    d = sub.add_parser("demo", help="generate the embedded data set, fit, evaluate, write a report")
    d.add_argument("--out", default=DEFAULT_DEMO_OUT)
    d.add_argument("--weights", default="auto")
    d.add_argument("--device", default="cpu")
    d.add_argument("--seed", type=int, default=0)
    d.add_argument("--n-train", type=int, default=None, help="smaller data set for a quick look")
    d.add_argument("--n-test", type=int, default=None)
    d.add_argument("--force", action="store_true", help="replace output the kit did not write")

    s = sub.add_parser("synth", help="write the embedded data set (MVTec layout)")
    s.add_argument("data_dir")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--n-train", type=int, default=None)
    s.add_argument("--n-test", type=int, default=None)
    s.add_argument("--force", action="store_true", help="replace data the kit did not write")
    s.add_argument("--categories", default=None, help="comma-separated subset (default: all)")


def _model_verbs(sub) -> None:
    """fit, predict, export, evaluate: the verbs that make or use a model."""
    f = sub.add_parser("fit", help="fit a model on good images and save it")
    f.add_argument("category_dir", help="MVTec category folder or a folder of good images")
    f.add_argument("--model", required=True, help="output model file (.pclite)")
    f.add_argument("--key", default=None, help="sign the model with the key in this file")
    f.add_argument("--drop-suspects", action="store_true", help="fit again without the "
                   "training images the training-set check names as suspects")
    f.add_argument("--append", action="store_true", help="add these good images to the "
                   "existing --model (same options) instead of fitting anew")
    add_model_options(f)

    pr = sub.add_parser("predict", help="score images with a saved model")
    pr.add_argument("--model", required=True)
    pr.add_argument("images", nargs="+", help="image files or folders")
    pr.add_argument("--out", default=None, help="write a heatmap overlay PNG per image here")
    pr.add_argument("--threshold", type=finite_float, default=None)
    pr.add_argument("--sensitivity", type=finite_float, default=None,
                    help="0-1, moves the model's threshold (0.5: as fitted; 1: most sensitive)")
    pr.add_argument("--json", default=None, help="write JSON lines here instead of stdout")
    pr.add_argument("--device", default="cpu")
    pr.add_argument("--batch-size", type=positive_int, default=16)
    pr.add_argument("--workers", type=int, default=None, help="threads decoding images ahead "
                    "of the backbone (default: half the CPUs; 0: none)")
    pr.add_argument("--key", default=None, help="key file of a signed model")
    pr.add_argument("--min-area", type=non_negative_int, default=DEFAULT_MIN_AREA,
                    help="drop defect regions smaller than this many pixels (the region of "
                    f"the image's peak is always kept) [{DEFAULT_MIN_AREA}]")

    x = sub.add_parser("export", help="export a saved model (ONNX: images -> scores, maps)")
    x.add_argument("--model", required=True)
    x.add_argument("--format", default="onnx", choices=["onnx"])
    x.add_argument("--out", required=True, help="output file (.onnx)")
    x.add_argument("--key", default=None, help="key file of a signed model")

    e = sub.add_parser("evaluate", help="score a category's test set (MVTec protocol)")
    e.add_argument("category_dir")
    e.add_argument("--model", default=None, help="saved model; else fit on train/good")
    e.add_argument("--json", default=None)
    e.add_argument("--out", default=None, help="write a report (index.html and figures) here")
    e.add_argument("--key", default=None, help="key file of a signed model")
    e.add_argument("--all", action="store_true", help="CATEGORY_DIR is a root: evaluate every "
                   "category under it into one table (resumable; needs --out)")
    e.add_argument("--jobs", type=positive_int, default=1, help="categories in parallel (--all)")
    e.add_argument("--drop-suspects", action="store_true", help="when fitting: fit again "
                   "without suspect training images")
    e.add_argument("--ray", default=None, metavar="ADDRESS", help="--all: run each category as "
                   "a task on this Ray cluster (auto: the local one or $RAY_ADDRESS)")
    add_model_options(e)


def cmd_synth(a: argparse.Namespace) -> None:
    """Write the embedded data set into a.data_dir."""
    from ..datasets.synth import generate

    t0 = time.perf_counter()
    cats = generate(a.data_dir, seed=a.seed, n_train=a.n_train, n_test=a.n_test, force=a.force,
                    categories=a.categories.split(",") if a.categories else None)
    print(f"wrote {len(cats)} categories to {a.data_dir} in {time.perf_counter() - t0:.1f} s: "
          + ", ".join(c.name for c in cats))


def cmd_fit(a: argparse.Namespace) -> None:
    """Fit on a category's train/good (or a folder of good images) and save the model."""
    if str(a.model).lower().endswith(".onnx"):
        raise PatchCoreError(
            f"--model: {a.model} is an ONNX export: it can only predict; append to the .pclite "
            "model it was exported from, then export again" if a.append else
            f"--model: {a.model}: fit writes .pclite models (export one to get an .onnx)")
    io.check_writable(a.model, "--model")  # before the slow work
    key = io.read_key(a.key)
    images = good_images(a.category_dir)
    if a.append:
        return append(a, images, key)
    if len(images) < 2:
        raise PatchCoreError(f"{a.category_dir}: need at least 2 good training images, found "
                             f"{len(images)}")
    model = PatchCore(**model_kwargs(a))
    _say(f"model: {model.describe()}")
    model.fit(images, drop_suspects=a.drop_suspects)
    _say_suspects(model)
    path = model.save(a.model, key)
    _say(f"saved {path}: {model.info['memory_bank_size']} bank patches from "
         f"{model.info['n_train']} images, threshold {model.threshold:.4g}, "
         f"weights {model.weights_used}")


def _say_suspects(model: PatchCore) -> None:
    """One line on the training-set check (each suspect got its own warning line)."""
    info = model.info
    dropped = info.get("dropped_suspects", 0)
    _say(f"training-set check: {info.get('train_checked')} images scored, "
         f"{len(info.get('train_suspects', []))} suspects"
         + (f"; dropped {dropped} suspects and fitted again" if dropped else ""))


def append(a: argparse.Namespace, images, key: bytes | None) -> None:
    """fit --append: add good images to the saved model; the file is replaced only when done."""
    model = PatchCore.load(a.model, device=a.device, key=key)
    saved_model_options(a, model.config, allowed=("device", "batch_size"),
                        why="--append keeps the model's options (fit anew to change them)")
    n0 = len(model.bank.patches)
    model.append(images)
    path = model.save(a.model, key)
    _say(f"appended {len(images)} images to {path}: bank {n0} -> {len(model.bank.patches)} "
         f"patches, threshold {model.threshold:.4g}, weights {model.weights_used}")


def cmd_predict(a: argparse.Namespace) -> None:
    """Score images with a saved model: one JSON line per image, overlays with --out."""
    if a.json:
        io.check_writable(a.json, "--json")
    if a.out:
        io.check_folder(a.out, "--out")
    model = load_any(a)
    model.workers = a.workers
    paths = walk_images(a.images)
    for p in paths if a.out else ():  # every overlay's place, before the first image is scored
        io.check_writable(Path(a.out) / overlay_name(p), "--out")
    thr = model.effective_threshold(a.threshold, a.sensitivity)
    scores, maps = model.predict(paths, batch_size=a.batch_size)
    found = regions.for_images(model, paths, scores, maps, thr, a.min_area)
    lines = prediction_lines(paths, scores, model.normalized(scores, thr), thr,
                             model.weights_used, found)
    if a.out:
        _write_overlays(model, paths, scores, maps, thr, Path(a.out), found)
    text = "\n".join(lines) + "\n"
    if a.json:
        io.write_text(a.json, text)
    else:
        sys.stdout.write(text)


def load_any(a: argparse.Namespace):
    """The model of --model: a .pclite file, or an ONNX export scored with onnxruntime."""
    if str(a.model).lower().endswith(".onnx"):
        from .export import OnnxModel  # onnxruntime loads only for ONNX models

        if not Path(a.model).is_file():
            raise PatchCoreError(f"--model: file not found: {a.model}")
        return OnnxModel(a.model, key=io.read_key(a.key))
    return PatchCore.load(a.model, device=a.device, key=io.read_key(a.key))


def cmd_export(a: argparse.Namespace) -> None:
    """Write a saved model as one ONNX graph (scores and maps from images in [0, 1])."""
    from .export import export_onnx  # torch.onnx and onnxscript load only for this verb

    io.check_writable(a.out, "--out")
    key = io.read_key(a.key)
    model = PatchCore.load(a.model, key=key, progress=False)
    _say(f"exported {export_onnx(model, a.out, key)} ({model.describe()}"
         f"{'; signed with the same key' if key else ''})")


def prediction_lines(paths, scores, normalized, threshold: float, weights: str,
                     found: list[list[dict]] | None = None) -> list[str]:
    """One JSON line per image; a NaN score is written as null and is always anomalous.
    `found`: each image's defect regions (regions.py), written as `regions`."""
    found = found if found is not None else [[] for _ in paths]
    return [json.dumps(dict(path=str(p), score=float(s) if s == s else None,
                            threshold=float(threshold), normalized_score=float(n),
                            anomalous=bool(n >= 0.5), weights=weights, regions=r))
            for p, s, n, r in zip(paths, scores, normalized, found)]


def _write_overlays(model, paths, scores, maps, thr, out: Path, found) -> None:
    """One overlay PNG per image: the original image, its map in the original pixels (the crop's
    margins, never scored, left uncoloured) and the defect regions' boxes."""
    from ..evaluation import plots

    lo, hi = model.map_range
    for p, s, m, r in zip(paths, scores, maps, found):
        img = load_image(p, 0, 0).permute(1, 2, 0).numpy()  # the original
        m = regions.original_map(model, m, img.shape[:2])
        verdict = "good" if s < thr else "ANOMALOUS"  # a NaN score never passes
        fig = plots.overlay(img, m, vmin=lo, vmax=hi, title=f"{p.name}: {s:.3g} ({verdict}, "
                            f"{len(r)} regions)", subtitle=model.describe(),
                            boxes=[x["bbox"] for x in r])
        plots.save(fig, out / overlay_name(p))


def overlay_name(path: Path) -> Path:
    """Where an input's overlay goes under --out: its path as given, mirrored (crack/000.png ->
    crack/000_overlay.png), so equal names in different folders never overwrite each other."""
    parts = [q for q in Path(path).parts[:-1] if q not in (Path(path).anchor, "..", ".")]
    return Path(*parts, f"{Path(path).stem}_overlay.png")


def cmd_evaluate(a: argparse.Namespace) -> None:
    """Score a category's test set (fitting first unless --model); JSON, optional report."""
    from ..evaluation.protocol import evaluate
    if a.json:
        io.check_writable(a.json, "--json")
    if a.key and not a.model:
        raise PatchCoreError("--key: evaluate uses a key only to load a signed --model")
    if a.out:
        _check_report_paths(Path(a.out), Path(a.category_dir).name, a.all)
    if a.all:
        return evaluate_all(a)
    if a.ray is not None:
        raise PatchCoreError("--ray: runs the categories of a root; use it with --all")
    model, kwargs = None, model_kwargs(a)
    if a.model:
        model = PatchCore.load(a.model, device=a.device, key=io.read_key(a.key))
        kwargs = saved_model_options(a, model.config)
        kwargs.pop("device", None)  # already on it
        model.workers = kwargs.pop("workers", model.workers)
    else:
        test_samples(a.category_dir)  # layout errors before the "fitting" message
        _say(f"fitting on {a.category_dir}/train/good")
    if a.model and a.drop_suspects:
        raise PatchCoreError("--drop-suspects: applies when evaluate fits; with --model, fit "
                             "the model again with fit --drop-suspects")
    ev = evaluate(a.category_dir, model, drop_suspects=a.drop_suspects, **kwargs)
    text = json.dumps(ev.summary, indent=2)
    if a.json:
        io.write_text(a.json, text + "\n")
    print(text)
    if a.out:
        from ..evaluation.report import write_report

        _say(f"report: {write_report(a.out, [ev], f'patchcore-lite: {ev.category}')}")


def _check_report_paths(out: Path, category: str, every: bool) -> None:
    """--out of evaluate: the folder and the report's files, before any model work."""
    io.check_folder(out, "--out")
    names = ["index.html"] + ([] if every else ["results.json"] + [
        f"{category}_{k}.png" for k in ("overlays", "roc", "histogram", "pro")])
    for name in names:
        io.check_writable(out / name, "--out")


def evaluate_all(a: argparse.Namespace) -> None:
    """evaluate ROOT --all: one table of every category, resumable under --out."""
    from .evaluate_all import run_all

    if a.model:
        raise PatchCoreError("--all: fits each category itself; it cannot take --model")
    out = Path(a.out or "runs/evaluate-all")
    table = run_all(a.category_dir, out, model_kwargs(a), a.jobs, say=_say, ray=a.ray)
    text = json.dumps(table, indent=2)
    if a.json:
        io.write_text(a.json, text + "\n")
    print(text)
    _say(f"table: {out / 'index.html'}")


def cmd_demo(a: argparse.Namespace) -> None:
    """Generate the embedded data, fit and evaluate each category, write the report."""
    from .demo import run_demo

    run_demo(Path(a.out), weights=a.weights, device=a.device, seed=a.seed, n_train=a.n_train,
             n_test=a.n_test, force=a.force)


def cmd_bench(a: argparse.Namespace) -> None:
    """Time and size fit and predict for growing training sets."""
    from ..bench.run import run

    run(a)


def _say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


COMMANDS = dict(demo=cmd_demo, synth=cmd_synth, fit=cmd_fit, predict=cmd_predict,
                evaluate=cmd_evaluate, bench=cmd_bench, export=cmd_export)


def main(argv: list[str] | None = None) -> int:
    """Run one verb; user errors print one `error:` line and return 2."""
    args = build_parser().parse_args(argv)
    warnings.formatwarning = lambda msg, cat, *rest: f"warning: {msg}\n"
    try:
        COMMANDS[args.verb](args)
        sys.stdout.flush()  # a closed pipe shows here, not at exit
    except PatchCoreError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader closed the pipe: say so once, not with a traceback
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - nothing more reaches the pipe
        print("error: stdout: the reader closed the pipe", file=sys.stderr)
        return 2
    except OSError as e:  # disk full, read-only folder, a path that is a file's child, ...
        where = e.filename if e.filename is not None else "output"
        print(f"error: {where}: {e.strerror or e}", file=sys.stderr)
        return 2
    return 0
