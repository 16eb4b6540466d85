"""Scoring a classifier's answers: accuracy, the confusion matrix and agreement with the CPU reference.

One definition for the two places that score: ``python -m tools evaluate`` (a whole split at once) and the
stream (host/session.py, one answer at a time, so the figures are live and survive an interrupted run).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


def confusion_matrix(labels: np.ndarray, predicted: np.ndarray, classes: int) -> np.ndarray:
    """Rows are true labels, columns predictions."""
    matrix = np.zeros((classes, classes), np.int64)
    np.add.at(matrix, (np.asarray(labels, np.int64), np.asarray(predicted, np.int64)), 1)
    return matrix


def scores(labels: np.ndarray, predicted: np.ndarray, classes: int) -> dict[str, Any]:
    """Accuracy and confusion matrix of a batch, as they go into model.json."""
    return {
        "accuracy": float(np.mean(np.asarray(predicted) == np.asarray(labels))),
        "confusion": confusion_matrix(labels, predicted, classes).tolist(),
    }


def confusion_text(matrix: np.ndarray, labels: list[str]) -> str:
    """Confusion matrix as text: rows are true labels, columns predictions (numbered to stay narrow)."""
    width = max(4, len(str(int(matrix.max()))) + 1)
    head = (
        "  confusion (rows: true, columns: predicted)\n"
        + " " * 22
        + "".join(f"{i:>{width}}" for i in range(len(labels)))
    )
    rows = [
        f"  {i:>2} {labels[i][:16]:<16} " + "".join(f"{int(v):>{width}}" for v in matrix[i]) for i in range(len(labels))
    ]
    return "\n".join([head, *rows])


@dataclass
class RunningScore:
    """Accuracy and reference agreement accumulated one answer at a time."""

    classes: int
    labelled: int = 0
    correct: int = 0
    compared: int = 0
    agree_top1: int = 0
    agree_exact: int = 0
    confusion: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        self.confusion = np.zeros((self.classes, self.classes), np.int64)

    def add_label(self, pred: int, label: int) -> bool:
        """Score one labelled answer; True when it is correct."""
        self.labelled += 1
        self.correct += int(pred == label)
        self.confusion[label, pred] += 1
        return pred == label

    def add_reference(self, output: np.ndarray, reference: np.ndarray) -> tuple[int, bool, bool]:
        """Compare one raw answer with the reference's; (reference top-1, same top-1, identical bytes)."""
        ref_pred = int(np.argmax(reference))
        agree = ref_pred == int(np.argmax(output))
        exact = bool(np.array_equal(np.asarray(reference, np.int32), np.asarray(output, np.int32)))
        self.compared += 1
        self.agree_top1 += int(agree)
        self.agree_exact += int(exact)
        return ref_pred, agree, exact

    @property
    def accuracy(self) -> float | None:
        return self.correct / self.labelled if self.labelled else None

    @property
    def agreement(self) -> float | None:
        return self.agree_top1 / self.compared if self.compared else None

    @property
    def exact_agreement(self) -> float | None:
        return self.agree_exact / self.compared if self.compared else None
