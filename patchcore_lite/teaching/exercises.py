"""Self-checks for the notebooks' "try it" exercises.

Each check takes the learner's answer (None while unanswered) and returns a `Verdict`
(ok, message), shown as one line with a tick or a cross. Where it can, a check works the right
answer out with the library itself (a forward pass, a grid, a bank) rather than storing it, so
that it stays true if the kit changes.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch

from ..evaluation.counts import precision_recall_f1


class Verdict(NamedTuple):
    ok: bool
    message: str

    def __repr__(self) -> str:
        return ("\u2705 " if self.ok else "\u274c ") + self.message

    def __str__(self) -> str:
        return repr(self)


def _unanswered(what: str) -> Verdict:
    return Verdict(False, f"Not answered yet: replace `answer = None` with {what}, then run the "
                          "cell again.")


def _choice(answer, right: str, explain: str, options: str) -> Verdict:
    if answer is None:
        return _unanswered(f"one letter ({options})")
    a = str(answer).strip().lower().rstrip(")").strip()
    if a == right:
        return Verdict(True, f"Right: {explain}")
    return Verdict(False, f"Not quite ('{answer}'). Think again: which of {options} holds?")


def _close(answer, truth: float, rel: float = 0.01, abs_: float = 1e-6) -> bool:
    try:
        return abs(float(answer) - truth) <= max(abs_, rel * abs(truth))
    except (TypeError, ValueError):
        return False


def _as_tuple(answer) -> tuple | None:
    try:
        return tuple(int(v) for v in answer)
    except (TypeError, ValueError):
        return None


# ---- 00 overview and data -------------------------------------------------------------------

def check_training_data(answer) -> Verdict:
    """Which images does PatchCore need to fit? a) good and defective images with masks,
    b) good images only, c) defective images only."""
    return _choice(answer, "b", "PatchCore learns from good images only; defects and masks are "
                   "needed only to *evaluate* it.", "a, b, c")


def check_defect_types(category: str | Path, answer) -> Verdict:
    """How many defect types does the category's test set have ('good' is not a defect)?"""
    from ..data import test_samples

    truth = len({s.defect for s in test_samples(category)} - {"good"})
    if answer is None:
        return _unanswered("a whole number")
    if _close(answer, truth, 0):
        return Verdict(True, f"Right: {Path(category).name} has {truth} defect types.")
    return Verdict(False, f"{answer} is not it: count the folders of test/ other than good/.")


def check_good_test_images(category: str | Path, answer) -> Verdict:
    """How many good (defect-free) test images does the category have?"""
    from ..data import test_samples

    truth = sum(s.label == 0 for s in test_samples(category))
    if answer is None:
        return _unanswered("a whole number")
    if _close(answer, truth, 0):
        return Verdict(True, f"Right: {truth} good test images; they measure false alarms.")
    return Verdict(False, f"{answer} is not it: count the images whose label is 0 "
                          "(data.test_samples gives each image's label).")


# ---- 01 backbone and forward hooks ----------------------------------------------------------

@functools.cache
def _shapes(backbone: str, layers: tuple[str, ...], size: int) -> dict[str, tuple[int, int, int]]:
    """(C, H, W) of each layer's output for a size x size input (random init: shapes only)."""
    from ..backbone import FeatureExtractor, load_backbone

    net, _ = load_backbone(backbone, None)
    feats = FeatureExtractor(net, layers)(torch.zeros(1, 3, size, size))
    return {layer: tuple(f.shape[1:]) for layer, f in zip(layers, feats)}


RESNET_LAYERS = ("layer1", "layer2", "layer3", "layer4")


def check_layer_shape(layer: str, answer, backbone: str = "resnet18",
                      input_size: int = 224) -> Verdict:
    """Shape (C, H, W) of `layer`'s output for one input_size x input_size image."""
    truth = _shapes(backbone, RESNET_LAYERS, input_size)[layer]
    if answer is None:
        return _unanswered("a tuple (C, H, W)")
    a = _as_tuple(answer)
    a = a[1:] if a is not None and len(a) == 4 and a[0] == 1 else a  # (1, C, H, W) is fine
    if a == truth:
        return Verdict(True, f"Right: {layer} of {backbone} gives {truth} for a {input_size} "
                             "input.")
    if a is not None and len(a) == 3 and a[0] == truth[0]:
        return Verdict(False, f"Channels right, grid wrong: {layer} halves the grid of the "
                              "layer before it (except layer1, after the stem's stride 4).")
    return Verdict(False, f"{answer} is not it: look at the shape table above.")


def check_stride(layer: str, answer, backbone: str = "resnet18", input_size: int = 224) -> Verdict:
    """How many input pixels apart are neighbouring cells of `layer`'s grid?"""
    truth = input_size // _shapes(backbone, RESNET_LAYERS, input_size)[layer][1]
    if answer is None:
        return _unanswered("a whole number of pixels")
    if _close(answer, truth, 0):
        return Verdict(True, f"Right: one {layer} cell per {truth}x{truth} input pixels.")
    return Verdict(False, f"{answer} is not it: divide the input size by the grid size.")


def check_skipped_modules(answer, layers: Iterable[str] = ("layer2", "layer3"),
                          backbone: str = "resnet18") -> Verdict:
    """Which top-level modules never run when the forward hooks are on `layers`?"""
    from ..backbone import load_backbone
    from ..teaching.widgets import modules_run

    net, _ = load_backbone(backbone, None)
    ran = set(modules_run(net, tuple(layers), torch.zeros(1, 3, 64, 64)))
    truth = {name for name, _ in net.named_children()} - ran
    if answer is None:
        return _unanswered("a list of module names, e.g. ['fc']")
    given = {answer} if isinstance(answer, str) else {str(a) for a in answer}
    if given == truth:
        return Verdict(True, f"Right: {sorted(truth)} never run, so they cost nothing.")
    if given < truth:
        return Verdict(False, f"Part of it: {len(truth - given)} more module(s) never run.")
    return Verdict(False, f"{sorted(given - truth) or sorted(given)}: some of these do run. The "
                          "pass stops inside the last hooked layer.")


# ---- 02 patch embedding ----------------------------------------------------------------------

def _grid_and_dim(layers: tuple[str, ...], backbone: str, size: int) -> tuple[int, int]:
    from .. import embedding

    shapes = _shapes(backbone, RESNET_LAYERS, size)
    feats = [torch.zeros(1, *shapes[layer]) for layer in layers]
    emb = embedding.embed(feats)
    return emb.shape[1] * emb.shape[2], emb.shape[3]


def check_patches_and_dim(answer, layers: Iterable[str] = ("layer2", "layer3"),
                          backbone: str = "resnet18", input_size: int = 224) -> Verdict:
    """(patches per image, D) of the embedding of `layers`."""
    truth = _grid_and_dim(tuple(layers), backbone, input_size)
    if answer is None:
        return _unanswered("a tuple (patches per image, D)")
    a = _as_tuple(answer)
    if a == truth:
        return Verdict(True, f"Right: {truth[0]} patches of {truth[1]} numbers per image.")
    if a is not None and len(a) == 2 and a[0] == truth[0]:
        return Verdict(False, "Patch count right; D is the sum of the layers' channels.")
    if a is not None and len(a) == 2 and a[1] == truth[1]:
        return Verdict(False, "D right; the grid is the finest (shallowest) layer's grid.")
    return Verdict(False, f"{answer} is not it: the grid comes from the shallowest layer, D from "
                          "all of them.")


def check_corner_count(answer) -> Verdict:
    """How many grid cells does embedding.aggregate average for a corner cell?"""
    from .. import embedding

    probe = torch.zeros(9, 1, 5, 5)  # each of the 9 cells near the corner set to 1 in turn
    for n in range(9):
        probe[n, 0, n // 3, n % 3] = 1.0
    truth = int((embedding.aggregate(probe)[:, 0, 0, 0] > 0).sum())
    if answer is None:
        return _unanswered("a whole number")
    if _close(answer, truth, 0):
        return Verdict(True, f"Right: {truth} cells lie inside the grid; the 5 padded ones count "
                             "as zeros (the sum is divided by 9, as in the official code), so "
                             "corner patches are damped, alike in training and test images.")
    return Verdict(False, f"{answer} is not it: which cells of a 3x3 window centred on a corner "
                          "lie inside the grid?")


# ---- 03 memory bank and coreset --------------------------------------------------------------

def check_bank_size(answer, n_images: int = 10, patches_per_image: int = 784,
                    ratio: float = 0.1) -> Verdict:
    """How many patches does a bank keep from n_images at this sampling ratio?"""
    from ..sampling import n_keep

    truth = n_keep(n_images * patches_per_image, ratio)
    if answer is None:
        return _unanswered("a whole number of patches")
    if _close(answer, truth, 0):
        return Verdict(True, f"Right: {n_images} x {patches_per_image} x {ratio:g} = {truth}.")
    return Verdict(False, f"{answer} is not it: patches = images x patches per image x ratio.")


def check_nxn_memory(answer_gb, n: int = 209 * 784) -> Verdict:
    """Gigabytes (1e9 bytes) of an N x N float32 distance matrix for n patches."""
    truth = n * n * 4 / 1e9
    if answer_gb is None:
        return _unanswered("a number of gigabytes")
    if _close(answer_gb, truth, 0.05):
        return Verdict(True, f"Right: {n:,}^2 x 4 bytes = {truth:.0f} GB. The greedy coreset "
                             "keeps one vector of N distances instead.")
    if _close(answer_gb, truth * 1e9 / 2**30, 0.05):
        return Verdict(True, f"Right (in GiB): {truth * 1e9 / 2**30:.0f} GiB = {truth:.0f} GB.")
    return Verdict(False, f"{answer_gb} GB is not it: N = {n:,}; each entry is a 4-byte float.")


def check_coverage_winner(lab, answer, ratio: float = 0.1) -> Verdict:
    """At the same ratio, which method ('random' or 'coreset') has the smaller coverage radius?"""
    radius = {m: lab.result(m, ratio)["coverage_radius"] for m in ("random", "coreset")}
    truth = min(radius, key=radius.get)
    if answer is None:
        return _unanswered("'random' or 'coreset'")
    if str(answer).strip().lower() == truth:
        return Verdict(True, f"Right: radius {radius[truth]:.3g} vs "
                             f"{max(radius.values()):.3g}. Greedy k-center adds the worst-covered "
                             "patch each step, so rare patterns get a representative.")
    return Verdict(False, f"'{answer}' is not it: compare the coverage radius column at ratio "
                          f"{ratio:g}.")


# ---- 04 kNN scoring and heatmaps ------------------------------------------------------------

def check_grid_cell(y: int, x: int, answer, input_size: int = 224, grid: int = 28) -> Verdict:
    """Which cell (row, col) of the grid x grid patch grid holds pixel (y, x)?"""
    truth = (y * grid // input_size, x * grid // input_size)
    if answer is None:
        return _unanswered("a tuple (row, col)")
    a = _as_tuple(answer)
    if a == truth:
        return Verdict(True, f"Right: cell {truth}; each cell covers {input_size // grid} pixels.")
    if a == truth[::-1]:
        return Verdict(False, "Swapped: (row, col) = (y // stride, x // stride).")
    return Verdict(False, f"{answer} is not it: divide by the stride "
                          f"({input_size}/{grid} = {input_size // grid} pixels).")


def check_image_score(patch_scores, answer) -> Verdict:
    """The image score from a grid of patch scores (no reweighting)."""
    truth = float(torch.as_tensor(np.asarray(patch_scores)).max())
    if answer is None:
        return _unanswered("a number (or an expression computing it)")
    if _close(answer, truth, 1e-5):
        return Verdict(True, f"Right: {truth:.4g}, the worst patch decides.")
    flat = np.asarray(patch_scores, dtype=np.float64)
    if _close(answer, float(flat.mean()), 1e-5):
        return Verdict(False, "That is the mean: one small defect would vanish among 784 "
                              "normal patches.")
    return Verdict(False, f"{answer} is not it: which single patch decides?")


def check_k_effect(answer) -> Verdict:
    """Compared with k=1, a patch score with k=3 is a) never lower, b) never higher,
    c) either, depending on the patch."""
    return _choice(answer, "a", "the mean of the 3 smallest distances is at least the smallest "
                   "one, so every score (and the map) can only rise with k.", "a, b, c")


# ---- 05 evaluation and thresholds -----------------------------------------------------------

def check_precision_recall(counts: dict, answer) -> Verdict:
    """(precision, recall) from a dict of tp, fp, tn, fn."""
    pr = precision_recall_f1(counts)
    truth = (pr["precision"] or 0.0, pr["recall"] or 0.0)
    if answer is None:
        return _unanswered("a tuple (precision, recall)")
    try:
        p, r = (float(v) for v in answer)
    except (TypeError, ValueError):
        return Verdict(False, "Give two numbers: (precision, recall).")
    if _close(p, truth[0], 1e-3, 1e-3) and _close(r, truth[1], 1e-3, 1e-3):
        return Verdict(True, f"Right: precision {truth[0]:.3f}, recall {truth[1]:.3f}.")
    if _close(p, truth[1], 1e-3, 1e-3) and _close(r, truth[0], 1e-3, 1e-3):
        return Verdict(False, "Swapped: precision = tp / (tp + fp), recall = tp / (tp + fn).")
    return Verdict(False, "Not quite: precision = tp / (tp + fp), recall = tp / (tp + fn).")


def check_missed_trend(answer) -> Verdict:
    """As the threshold rises, missed defects (fn) a) never decrease, b) never increase,
    c) can go either way."""
    return _choice(answer, "a", "a higher threshold flags a subset of what a lower one flags, so "
                   "misses can only grow and false alarms only shrink.", "a, b, c")


def check_no_false_alarms(labels, scores, answer) -> Verdict:
    """A threshold with no false alarm on these images that misses as few defects as possible."""
    from ..evaluation.counts import confusion_counts

    labels = np.asarray(labels).ravel() > 0.5
    scores = np.asarray(scores).ravel()
    if answer is None:
        return _unanswered("a threshold (a number)")
    try:
        t = float(answer)
    except (TypeError, ValueError):
        return Verdict(False, f"{answer!r} is not a number.")
    best = confusion_counts(labels, scores, np.nextafter(scores[~labels].max(), np.inf))
    got = confusion_counts(labels, scores, t)
    if got["fp"]:
        return Verdict(False, f"At {t:.4g} there are still {got['fp']} false alarm(s): go above "
                              "the highest good score.")
    if got["fn"] > best["fn"]:
        return Verdict(False, f"No false alarms, but {got['fn']} missed where {best['fn']} is "
                              "possible: come down, to just above the highest good score.")
    return Verdict(True, f"Right: no false alarms, {got['fn']} of {int(labels.sum())} defects "
                         "missed. On a production line this is a choice of the business, "
                         "not of the model.")
