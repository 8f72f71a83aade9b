"""Segmentation metrics: a confusion matrix over labelled pixels, per-class IoU and mIoU.

``IoU_c = TP / (TP + FP + FN)``; mIoU is the mean over the classes that occur in the labels or the
predictions (a class absent from both has no IoU). Pixels labelled 255 are not counted.
"""

from __future__ import annotations

import numpy as np

from .labels import IGNORE_ID


class ConfusionMatrix:
    """``counts[label, prediction]`` over ``num_classes`` classes, accumulated with ``update``."""

    def __init__(self, num_classes: int) -> None:
        self.num_classes = num_classes
        self.counts = np.zeros((num_classes, num_classes), np.int64)

    def update(self, labels: np.ndarray, predictions: np.ndarray) -> None:
        """Add one label map and its prediction (same shape, class ids; 255 labels are skipped)."""
        if labels.shape != predictions.shape:
            raise ValueError(f"labels {labels.shape} and predictions {predictions.shape} differ in shape")
        keep = labels != IGNORE_ID
        lab = labels[keep].astype(np.int64)
        pred = predictions[keep].astype(np.int64)
        if lab.size and (lab.max() >= self.num_classes or pred.max() >= self.num_classes):
            raise ValueError(f"class id out of range for {self.num_classes} classes")
        self.counts += np.bincount(lab * self.num_classes + pred, minlength=self.num_classes**2).reshape(
            self.num_classes, self.num_classes
        )

    def merge(self, other: ConfusionMatrix) -> None:
        self.counts += other.counts

    def iou(self) -> np.ndarray:
        """Per-class IoU, ``(num_classes,)`` float64; NaN for classes absent from labels and predictions."""
        tp = np.diag(self.counts).astype(np.float64)
        union = self.counts.sum(0) + self.counts.sum(1) - tp
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(union > 0, tp / np.maximum(union, 1), np.nan)

    def miou(self) -> float:
        values = self.iou()
        return float(np.nanmean(values)) if np.isfinite(values).any() else float("nan")

    def pixel_accuracy(self) -> float:
        total = self.counts.sum()
        return float(np.trace(self.counts) / total) if total else float("nan")
