"""Evaluation figures (PNG) and the metrics table logged with every run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import numpy.typing as npt

from hearteye.anchors import ANCHORS
from hearteye.evaluation.metrics import REPORTED_CLASSES
from hearteye.labels import AAMI_CLASSES


def confusion_matrix_png(cm: npt.NDArray[np.int64], path: Path, title: str) -> Path:
    """Row-normalised confusion matrix with raw counts in each cell."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6, 5), dpi=120)
    ax = fig.add_subplot()
    rows = cm.sum(axis=1, keepdims=True)
    norm = np.divide(cm, rows, out=np.zeros(cm.shape, dtype=float), where=rows > 0)
    image = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    fig.colorbar(image, ax=ax, label="fraction of reference class")
    ax.set_xticks(range(len(AAMI_CLASSES)), AAMI_CLASSES)
    ax.set_yticks(range(len(AAMI_CLASSES)), AAMI_CLASSES)
    ax.set_xlabel("predicted")
    ax.set_ylabel("reference")
    ax.set_title(title)
    for i in range(cm.shape[0]):
        for j in range(cm.shape[1]):
            ax.text(j, i, str(cm[i, j]), ha="center", va="center",
                    color="white" if norm[i, j] > 0.5 else "black", fontsize=8)  # fmt: skip
    fig.tight_layout()
    fig.savefig(path)
    return path


def class_metrics_png(metrics: dict[str, float], path: Path, title: str) -> Path:
    """Sensitivity / +P / F1 per class, with the published anchors for S and V."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 4), dpi=120)
    ax = fig.add_subplot()
    x = np.arange(len(REPORTED_CLASSES))
    for offset, (kind, label) in zip(
        (-0.27, 0.0, 0.27), (("sensitivity", "Se"), ("ppv", "+P"), ("f1", "F1")), strict=True
    ):
        values = [metrics[f"ds2_{c}_{kind}"] for c in REPORTED_CLASSES]
        ax.bar(x + offset, values, width=0.25, label=label)
    markers = ("x", "+")
    for anchor, marker in zip(ANCHORS, markers, strict=False):
        for c in ("S", "V"):
            i = REPORTED_CLASSES.index(c)
            se = getattr(anchor, f"{c.lower()}_sensitivity")
            ppv = getattr(anchor, f"{c.lower()}_ppv")
            ax.plot([i - 0.27, i], [se, ppv], linestyle="none", marker=marker, color="black",
                    label=anchor.name if c == "S" else None)  # fmt: skip
    ax.set_xticks(x, REPORTED_CLASSES)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("DS2")
    ax.set_title(title)
    ax.legend(loc="lower left", fontsize=8, ncols=2)
    fig.tight_layout()
    fig.savefig(path)
    return path


def metrics_table(metrics: dict[str, float]) -> str:
    """Markdown table: per-class Se/+P/F1 beside the published anchors."""
    lines = [
        "| class | Se | +P | F1 | " + " | ".join(f"{a.name} Se / +P" for a in ANCHORS) + " |",
        "|---|---|---|---|" + "---|" * len(ANCHORS),
    ]
    for c in REPORTED_CLASSES:
        anchors = []
        for a in ANCHORS:
            if c in ("S", "V"):
                se, ppv = getattr(a, f"{c.lower()}_sensitivity"), getattr(a, f"{c.lower()}_ppv")
                anchors.append(f"{se:.1%} / {ppv:.1%}")
            else:
                anchors.append("–")
        lines.append(
            f"| {c} | {metrics[f'ds2_{c}_sensitivity']:.1%} | {metrics[f'ds2_{c}_ppv']:.1%} | "
            f"{metrics[f'ds2_{c}_f1']:.3f} | " + " | ".join(anchors) + " |"
        )
    lines.append(
        f"\nmacro-F1 (N,S,V,F) {metrics['ds2_macro_f1']:.3f} · accuracy {metrics['ds2_accuracy']:.1%}"
    )
    return "\n".join(lines) + "\n"
