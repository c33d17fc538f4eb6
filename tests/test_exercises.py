"""Every self-check accepts a right answer, rejects a wrong one, and waits politely for None."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from patchcore_lite import PatchCore
from patchcore_lite.teaching import exercises as ex
from patchcore_lite.teaching import widgets


def right(v: ex.Verdict) -> None:
    assert isinstance(v, ex.Verdict) and v.ok, v.message
    assert repr(v).startswith("\u2705")


def wrong(v: ex.Verdict) -> None:
    assert isinstance(v, ex.Verdict) and not v.ok, v.message
    assert repr(v).startswith("\u274c") and v.message


def unanswered(v: ex.Verdict) -> None:
    wrong(v)
    assert v.message.startswith("Not answered yet")


@pytest.mark.parametrize("check", [ex.check_training_data, ex.check_k_effect,
                                   ex.check_missed_trend])
def test_multiple_choice(check):
    unanswered(check(None))
    for letter in "abc":
        (right if letter == {ex.check_training_data: "b"}.get(check, "a") else wrong)(
            check(letter))
    key = "b" if check is ex.check_training_data else "a"
    right(check(f" {key.upper()}) "))  # case, blanks and a closing parenthesis are fine


def test_notebook_00_checks(tiny_category_ro):
    cat = tiny_category_ro  # train 6, test good 2, test broken 2
    right(ex.check_defect_types(cat, 1))
    wrong(ex.check_defect_types(cat, 2))
    unanswered(ex.check_defect_types(cat, None))
    right(ex.check_good_test_images(cat, 2))
    wrong(ex.check_good_test_images(cat, 4))
    wrong(ex.check_good_test_images(cat, "two"))


def test_notebook_01_checks():
    right(ex.check_layer_shape("layer3", (256, 14, 14)))
    right(ex.check_layer_shape("layer3", torch.Size([1, 256, 14, 14])))
    right(ex.check_layer_shape("layer1", (64, 56, 56)))
    wrong(ex.check_layer_shape("layer3", (256, 28, 28)))
    wrong(ex.check_layer_shape("layer3", (512, 7, 7)))
    wrong(ex.check_layer_shape("layer3", "big"))
    unanswered(ex.check_layer_shape("layer3", None))
    right(ex.check_stride("layer2", 8))
    right(ex.check_stride("layer4", 32))
    wrong(ex.check_stride("layer2", 28))
    right(ex.check_skipped_modules(["layer4", "avgpool", "fc"]))
    right(ex.check_skipped_modules(("fc", "avgpool", "layer4")))
    wrong(ex.check_skipped_modules(["fc"]))
    wrong(ex.check_skipped_modules(["layer3", "layer4", "avgpool", "fc"]))
    right(ex.check_skipped_modules(["layer2", "layer3", "layer4", "avgpool", "fc"],
                                   layers=("layer1",)))
    unanswered(ex.check_skipped_modules(None))


def test_notebook_02_checks():
    right(ex.check_patches_and_dim((784, 384)))
    right(ex.check_patches_and_dim((3136, 448), layers=("layer1", "layer2", "layer3")))
    wrong(ex.check_patches_and_dim((784, 448), layers=("layer1", "layer2", "layer3")))
    wrong(ex.check_patches_and_dim((196, 384)))
    wrong(ex.check_patches_and_dim(784))
    unanswered(ex.check_patches_and_dim(None))
    right(ex.check_corner_count(4))
    wrong(ex.check_corner_count(9))
    unanswered(ex.check_corner_count(None))


def test_notebook_03_checks():
    right(ex.check_bank_size(784))
    right(ex.check_bank_size(6272, n_images=80))
    wrong(ex.check_bank_size(7840))
    right(ex.check_nxn_memory(107.4))
    right(ex.check_nxn_memory(100.0))  # GiB is accepted too
    wrong(ex.check_nxn_memory(0.1))
    wrong(ex.check_nxn_memory(10.7))
    unanswered(ex.check_nxn_memory(None))
    g = torch.Generator().manual_seed(0)
    model = PatchCore(weights=None, progress=False)  # its scoring path; no bank needed
    lab = widgets.BankLab(model, torch.randn(400, 8, generator=g),
                          torch.randn(4, 2, 5, 8, generator=g), [0, 0, 1, 1])
    right(ex.check_coverage_winner(lab, "coreset"))
    right(ex.check_coverage_winner(lab, " Coreset "))
    wrong(ex.check_coverage_winner(lab, "random"))
    unanswered(ex.check_coverage_winner(lab, None))


def test_notebook_04_checks():
    right(ex.check_grid_cell(100, 57, (12, 7)))
    right(ex.check_grid_cell(0, 223, [0, 27]))
    wrong(ex.check_grid_cell(100, 57, (7, 12)))
    wrong(ex.check_grid_cell(100, 57, (100, 57)))
    unanswered(ex.check_grid_cell(100, 57, None))
    scores = torch.rand(28, 28, generator=torch.Generator().manual_seed(0))
    right(ex.check_image_score(scores, scores.max()))
    right(ex.check_image_score(scores.numpy(), float(scores.max())))
    wrong(ex.check_image_score(scores, scores.mean()))
    wrong(ex.check_image_score(scores, scores.min()))
    unanswered(ex.check_image_score(scores, None))


def test_notebook_05_checks():
    counts = dict(tp=8, fp=2, tn=14, fn=4)
    right(ex.check_precision_recall(counts, (0.8, 8 / 12)))
    wrong(ex.check_precision_recall(counts, (8 / 12, 0.8)))
    wrong(ex.check_precision_recall(counts, (0.5, 0.5)))
    wrong(ex.check_precision_recall(counts, 0.8))
    unanswered(ex.check_precision_recall(counts, None))
    labels = np.array([0, 0, 0, 1, 1, 1, 1])
    scores = np.array([0.1, 0.5, 0.4, 0.3, 0.6, 0.9, 0.55])
    right(ex.check_no_false_alarms(labels, scores, 0.52))  # above 0.5, catches 0.55, 0.6, 0.9
    right(ex.check_no_false_alarms(labels, scores, 0.55))
    wrong(ex.check_no_false_alarms(labels, scores, 0.5))  # the good 0.5 is flagged
    wrong(ex.check_no_false_alarms(labels, scores, 0.7))  # safe but misses more than needed
    wrong(ex.check_no_false_alarms(labels, scores, "high"))
    unanswered(ex.check_no_false_alarms(labels, scores, None))
