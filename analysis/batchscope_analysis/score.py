"""What a study is judged by: validation accuracy (classification) or validation loss (regression).

A run trained with `model.loss: mse` has no accuracy: its /eval/val_acc and
/eval/train_acc are NaN (docs/run-file.md). A study whose runs are all mse
runs is therefore compared on validation loss (lower is better), its
generalization gap is validation minus training loss, and the tables leave
the accuracy columns out instead of showing them as NaN. Every other study
(cross-entropy runs, or a mix) keeps accuracy. Files written before the
`model_loss` attribute existed are cross-entropy runs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterable

from batchscope_analysis.textfmt import fmt, pct, points

if TYPE_CHECKING:  # load.py imports this module; the Run type is only needed for hints.
    from batchscope_analysis.load import Run

LOSS_CROSS_ENTROPY: str = "cross_entropy"
LOSS_MSE: str = "mse"
MODEL_LOSSES: tuple[str, ...] = (LOSS_CROSS_ENTROPY, LOSS_MSE)
MODEL_INITS: tuple[str, ...] = ("builtin", "file", "seeded")
# Root attributes describing the model (docs/run-file.md) and what a file
# written before they existed meant: a built-in model trained on class labels.
MODEL_ATTR_DEFAULTS: dict[str, str] = {
    "model_loss": LOSS_CROSS_ENTROPY,
    "model_init": "builtin",
    "model_buffers": "",
}


@dataclass(frozen=True)
class Score:
    """The quantity runs are ranked by, and how to talk about it.

    `column`/`train_column` are /eval columns; `final`, `best` and `gap`
    name the runs-table columns holding the last value, the best value over
    evaluations, and the generalization gap (positive: better on the training
    subset than on the validation split).
    """

    name: str  # "accuracy" | "loss"
    column: str
    train_column: str
    higher_is_better: bool
    final: str
    best: str
    gap: str
    noun: str
    gap_words: str

    def value(self, x: float) -> str:
        """A value as it reads in a sentence: 89.8 % for accuracy, 0.1234 for loss."""
        if not math.isfinite(x):
            return "n/a"
        return pct(x) if self.name == "accuracy" else _loss_text(x)

    def difference(self, x: float) -> str:
        """A difference of two values in words: percentage points, or loss units."""
        return points(x) if self.name == "accuracy" else _loss_text(x)

    def gap_of(self, val: float, train: float) -> float:
        return train - val if self.higher_is_better else val - train

    @property
    def best_word(self) -> str:
        return "the best validation accuracy" if self.higher_is_better else "the lowest validation loss"

    @property
    def better_word(self) -> str:
        return "above" if self.higher_is_better else "below"


ACCURACY: Score = Score(
    name="accuracy", column="val_acc", train_column="train_acc", higher_is_better=True,
    final="final_val_acc", best="best_val_acc", gap="gap", noun="validation accuracy",
    gap_words="train minus validation accuracy",
)
LOSS: Score = Score(
    name="loss", column="val_loss", train_column="train_loss", higher_is_better=False,
    final="final_val_loss", best="best_val_loss", gap="loss_gap", noun="validation loss",
    gap_words="validation minus training loss",
)


def study_score(runs: Iterable["Run"]) -> Score:
    """LOSS when every run is an mse run (none has accuracy), else ACCURACY."""
    runs = list(runs)
    if runs and all(not run.has_accuracy for run in runs):
        return LOSS
    return ACCURACY


def _loss_text(x: float) -> str:
    # Four significant digits: mse losses span from 1e-4 to thousands.
    return fmt(x) if abs(x) >= 1000 else f"{x:.4g}"
