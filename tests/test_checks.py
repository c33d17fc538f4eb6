"""Every self-check accepts a right answer, rejects a wrong one, and waits politely for None.

The checks sit in each notebook's lesson module; all return a `checks.Verdict`."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from patchcore_lite import PatchCore
from patchcore_lite.teaching import (
    checks,
    lesson00,
    lesson01,
    lesson02,
    lesson03,
    lesson04,
    lesson05,
)


def right(v: checks.Verdict) -> None:
    assert isinstance(v, checks.Verdict) and v.ok, v.message
    assert repr(v).startswith(checks.OK)


def wrong(v: checks.Verdict) -> None:
    assert isinstance(v, checks.Verdict) and not v.ok, v.message
    assert repr(v).startswith(checks.WRONG) and v.message


def unanswered(v: checks.Verdict) -> None:
    wrong(v)
    assert v.message.startswith("Not answered yet")


@pytest.mark.parametrize("check", [lesson00.check_training_data, lesson04.check_k_effect,
                                   lesson05.check_missed_trend])
def test_multiple_choice(check):
    unanswered(check(None))
    for letter in "abc":
        (right if letter == {lesson00.check_training_data: "b"}.get(check, "a") else wrong)(
            check(letter))
    key = "b" if check is lesson00.check_training_data else "a"
    right(check(f" {key.upper()}) "))  # case, blanks and a closing parenthesis are fine


def test_notebook_00_checks(tiny_category_ro):
    cat = tiny_category_ro  # train 6, test good 2, test broken 2
    right(lesson00.check_defect_types(cat, 1))
    wrong(lesson00.check_defect_types(cat, 2))
    unanswered(lesson00.check_defect_types(cat, None))
    right(lesson00.check_good_test_images(cat, 2))
    wrong(lesson00.check_good_test_images(cat, 4))
    wrong(lesson00.check_good_test_images(cat, "two"))


def test_notebook_01_checks():
    right(lesson01.check_layer_shape("layer3", (256, 14, 14)))
    right(lesson01.check_layer_shape("layer3", torch.Size([1, 256, 14, 14])))
    right(lesson01.check_layer_shape("layer1", (64, 56, 56)))
    wrong(lesson01.check_layer_shape("layer3", (256, 28, 28)))
    wrong(lesson01.check_layer_shape("layer3", (512, 7, 7)))
    wrong(lesson01.check_layer_shape("layer3", "big"))
    unanswered(lesson01.check_layer_shape("layer3", None))
    right(lesson01.check_stride("layer2", 8))
    right(lesson01.check_stride("layer4", 32))
    wrong(lesson01.check_stride("layer2", 28))
    right(lesson01.check_skipped_modules(["layer4", "avgpool", "fc"]))
    right(lesson01.check_skipped_modules(("fc", "avgpool", "layer4")))
    wrong(lesson01.check_skipped_modules(["fc"]))
    wrong(lesson01.check_skipped_modules(["layer3", "layer4", "avgpool", "fc"]))
    right(lesson01.check_skipped_modules(["layer2", "layer3", "layer4", "avgpool", "fc"],
                                   layers=("layer1",)))
    unanswered(lesson01.check_skipped_modules(None))


def test_notebook_02_checks():
    right(lesson02.check_patches_and_dim((784, 384)))
    right(lesson02.check_patches_and_dim((3136, 448), layers=("layer1", "layer2", "layer3")))
    wrong(lesson02.check_patches_and_dim((784, 448), layers=("layer1", "layer2", "layer3")))
    wrong(lesson02.check_patches_and_dim((196, 384)))
    wrong(lesson02.check_patches_and_dim(784))
    unanswered(lesson02.check_patches_and_dim(None))
    right(lesson02.check_corner_count(4))
    wrong(lesson02.check_corner_count(9))
    unanswered(lesson02.check_corner_count(None))


def test_notebook_03_checks():
    right(lesson03.check_bank_size(784))
    right(lesson03.check_bank_size(6272, n_images=80))
    wrong(lesson03.check_bank_size(7840))
    right(lesson03.check_nxn_memory(107.4))
    right(lesson03.check_nxn_memory(100.0))  # GiB is accepted too
    wrong(lesson03.check_nxn_memory(0.1))
    wrong(lesson03.check_nxn_memory(10.7))
    unanswered(lesson03.check_nxn_memory(None))
    g = torch.Generator().manual_seed(0)
    model = PatchCore(weights=None, progress=False)  # its scoring path; no bank needed
    lab = lesson03.BankLab(model, torch.randn(400, 8, generator=g),
                          torch.randn(4, 2, 5, 8, generator=g), [0, 0, 1, 1])
    right(lesson03.check_coverage_winner(lab, "coreset"))
    right(lesson03.check_coverage_winner(lab, " Coreset "))
    wrong(lesson03.check_coverage_winner(lab, "random"))
    unanswered(lesson03.check_coverage_winner(lab, None))


def test_notebook_04_checks():
    right(lesson04.check_grid_cell(100, 57, (12, 7)))
    right(lesson04.check_grid_cell(0, 223, [0, 27]))
    wrong(lesson04.check_grid_cell(100, 57, (7, 12)))
    wrong(lesson04.check_grid_cell(100, 57, (100, 57)))
    unanswered(lesson04.check_grid_cell(100, 57, None))
    scores = torch.rand(28, 28, generator=torch.Generator().manual_seed(0))
    right(lesson04.check_image_score(scores, scores.max()))
    right(lesson04.check_image_score(scores.numpy(), float(scores.max())))
    wrong(lesson04.check_image_score(scores, scores.mean()))
    wrong(lesson04.check_image_score(scores, scores.min()))
    unanswered(lesson04.check_image_score(scores, None))


def test_notebook_05_checks():
    counts = dict(tp=8, fp=2, tn=14, fn=4)
    right(lesson05.check_precision_recall(counts, (0.8, 8 / 12)))
    wrong(lesson05.check_precision_recall(counts, (8 / 12, 0.8)))
    wrong(lesson05.check_precision_recall(counts, (0.5, 0.5)))
    wrong(lesson05.check_precision_recall(counts, 0.8))
    unanswered(lesson05.check_precision_recall(counts, None))
    labels = np.array([0, 0, 0, 1, 1, 1, 1])
    scores = np.array([0.1, 0.5, 0.4, 0.3, 0.6, 0.9, 0.55])
    right(lesson05.check_no_false_alarms(labels, scores, 0.52))  # above 0.5, catches 0.55, 0.6, 0.9
    right(lesson05.check_no_false_alarms(labels, scores, 0.55))
    wrong(lesson05.check_no_false_alarms(labels, scores, 0.5))  # the good 0.5 is flagged
    wrong(lesson05.check_no_false_alarms(labels, scores, 0.7))  # safe but misses more than needed
    wrong(lesson05.check_no_false_alarms(labels, scores, "high"))
    unanswered(lesson05.check_no_false_alarms(labels, scores, None))


def test_the_helpers_speak_one_protocol():
    unanswered(checks.number(None, 3, "three.", "count again."))
    right(checks.number("3", 3, "three.", "count again.", rel=0))
    v = checks.number(4, 3, "three.", "count again.", rel=0)
    wrong(v)
    assert v.message == "4 is not it: count again."
    assert checks.close(1.005, 1.0) and not checks.close("x", 1.0)
    unanswered(checks.choice(None, "a", "why.", "a, b"))
    right(checks.choice("A)", "a", "why.", "a, b"))
    assert checks.choice("c", "a", "why.", "a, b", hint="Look up.").message.endswith("Look up.")
    assert checks.ints([1.0, 2]) == (1, 2) and checks.ints("xy") == "xy"
    assert checks.ints(None) is None
    near = [(lambda a: len(a) == 2, "Two numbers, wrong ones.")]
    right(checks.exact((1, 2), (1, 2), "yes.", "no.", "a pair", near))
    assert checks.exact((2, 1), (1, 2), "yes.", "no.", "a pair", near).message == near[0][1]
    assert checks.exact(7, (1, 2), "yes.", "no.", "a pair", near).message == "7 is not it: no."
    unanswered(checks.exact(None, (1, 2), "yes.", "no.", "a pair"))


def test_new_self_checks_not_answerable_from_the_output_above():
    right(lesson00.check_crop_fraction((224 / 256) ** 2))
    wrong(lesson00.check_crop_fraction(224 / 256))
    right(lesson00.check_why_good_tests("b"))
    wrong(lesson00.check_why_good_tests("a"))
    right(lesson01.check_layer_shape("layer3", (256, 20, 20), input_size=320))
    right(lesson01.check_patch_count("layer2", 1600, input_size=320))
    wrong(lesson01.check_patch_count("layer2", 784, input_size=320))
    right(lesson01.check_skipped_modules(["layer3", "layer4", "avgpool", "fc"],
                                         layers=("layer1", "layer2")))
    right(lesson02.check_patches_and_dim((1600, 384), input_size=320))
    right(lesson03.check_bank_size(980, n_images=25, ratio=0.05))
    right(lesson03.check_radius_trend("a"))
    wrong(lesson03.check_radius_trend("c"))


def test_marks_render_without_an_emoji_font():
    """The check marks are plain text symbols that DejaVu Sans (matplotlib's font) draws."""
    from matplotlib import font_manager
    from matplotlib.ft2font import FT2Font

    font = FT2Font(font_manager.findfont("DejaVu Sans"))
    for mark in (checks.OK, checks.WRONG):
        assert ord(mark) < 0x1F000 and font.get_char_index(ord(mark)) != 0, hex(ord(mark))
