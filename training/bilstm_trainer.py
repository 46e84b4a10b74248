"""BiLSTM training on DS1 with patient-grouped validation; DS2 is never seen here.

Selection: DS1's records are split into ``folds`` groups of whole records, stratified (for the
seed) so that every group holds a fair share of the S and V beats. For each group the networks
train on the other records and classify the held-out group after every epoch, so every DS1 beat
gets an unseen-patient (out-of-fold) prediction per epoch. The number of epochs is the one whose
pooled out-of-fold macro-F1 (N, S, V, F, at :func:`choose_class_weights`' best operating point;
3-epoch moving average) is best. The operating point is chosen on that epoch's pooled
out-of-fold probabilities by :func:`choose_operating_point`. The final networks then train on
all of DS1 for the chosen number of epochs, on the same schedule.

Class imbalance is handled by sampling, not by loss weights: each epoch draws a fixed number of
beats with every class's share set by ``class_power`` (N undersampled, S/V/F oversampled, a
different N subset every epoch), and within a class each record's share grows only as
``count ** record_power``, so one patient with hundreds of ectopic beats (209's S, 208's F) cannot
stand for the whole class. The prior shift this leaves is corrected by the operating point.
Sampling rather than loss weights: fully balanced weights would give each of DS1's 944 S beats ~50
times an N beat's gradient in rare, noisy batches; resampling gives steadier batches, the window
augmentation makes the repeated ectopic beats differ, and an epoch stays a fixed number of draws
(a new N subset each time), so its CPU cost does not grow with the 46k N beats.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
from torch import nn

from hearteye.dataset import BeatDataset
from hearteye.evaluation.metrics import REPORTED_CLASSES, class_metrics, confusion
from hearteye.labels import AAMI_CLASSES
from hearteye.model.base import apply_prior_shift
from hearteye.model.bilstm_model import (
    CONTEXT_FEATURES,
    BiLSTMBeatModel,
    BiLSTMConfig,
    BiLSTMNet,
    ContextScaler,
    input_channels,
)
from training.base import FitResult, TrainingContext
from training.operating_point import choose_class_weights, choose_operating_point

#: Classes with fewer training beats than this keep their natural share when sampling
#: (Q: 8 beats in DS1 would otherwise be repeated hundreds of times per epoch).
MIN_BALANCED_BEATS = 50
IMBALANCE_STRATEGY = (
    "per-epoch resampling: class share ~ count**class_power (N undersampled, S/V/F oversampled), "
    "record share within a class ~ count**record_power; unweighted cross-entropy; "
    "prior-shift operating point chosen on out-of-fold DS1 predictions"
)
SELECTION = (
    "patient-grouped K-fold on DS1 (whole records, S/V-stratified): epochs by pooled out-of-fold "
    "macro-F1 (N,S,V,F; 3-epoch moving average); operating point: among S/V weights within one "
    "record-bootstrap standard error of the best out-of-fold macro-F1, the one with the largest "
    "worst margin over the de Chazal 2004 S/V sensitivity and +P; final fit on all DS1"
)

FloatArray = npt.NDArray[np.float32]
Labels = npt.NDArray[np.int64]


#: The architecture's defaults live once, in BiLSTMConfig; the fields below start from them.
_NET = BiLSTMConfig()


@dataclass(frozen=True)
class BiLSTMHyperParams:
    """Everything that shapes a fit (logged as MLflow params, flat, under stable names)."""

    # architecture (see BiLSTMConfig, which holds each default and its meaning)
    patch: int = _NET.patch
    # The window minus the patient's reference beat: on DS1's grouped cross-validation its pooled
    # out-of-fold macro-F1 was 0.616 / 0.615 (seeds 0 / 1) against 0.596 / 0.604 for the window
    # alone and 0.588 for both channels (scripts/compare_bilstm_inputs.py; docs/model-card-bilstm.md).
    inputs: tuple[str, ...] = _NET.inputs
    hidden: int = _NET.hidden
    layers: int = _NET.layers
    head_hidden: int = _NET.head_hidden
    dropout: float = _NET.dropout
    sequence_dropout: float = _NET.sequence_dropout
    context_features: tuple[str, ...] = CONTEXT_FEATURES
    # optimiser: AdamW, cosine decay over max_epochs, gradient-norm clipping
    lr: float = 2e-3
    weight_decay: float = 1e-4
    batch_size: int = 256
    grad_clip: float = 1.0
    max_epochs: int = 10
    samples_per_epoch: int = 8192
    # class imbalance (see the module docstring)
    class_power: float = 0.5
    record_power: float = 0.5
    # augmentation of the windows: amplitude scale, time shift (samples), white noise
    amplitude_jitter: float = 0.15
    max_shift: int = 3
    noise_std: float = 0.03
    # networks averaged per fit (same records, different seeds)
    ensemble: int = 3
    # patient-grouped validation
    folds: int = 3

    def architecture(self, sequence_length: int) -> BiLSTMConfig:
        return BiLSTMConfig(
            sequence_length=sequence_length,
            patch=self.patch,
            inputs=self.inputs,
            hidden=self.hidden,
            layers=self.layers,
            head_hidden=self.head_hidden,
            dropout=self.dropout,
            sequence_dropout=self.sequence_dropout,
            n_context=len(self.context_features),
        )


FULL = BiLSTMHyperParams()
QUICK = replace(FULL, head_hidden=32, max_epochs=2, samples_per_epoch=2048, ensemble=1, folds=2)


@dataclass
class BiLSTMTrainer:
    """Grouped K-fold on DS1 chooses epochs and operating point; then a fit on all of DS1."""

    kind: str = "bilstm"
    hparams: BiLSTMHyperParams | None = None  # None: FULL, or QUICK in quick mode

    def fit(self, train: BeatDataset, ctx: TrainingContext) -> FitResult:
        hp = self.hparams or (QUICK if ctx.quick else FULL)
        started = time.perf_counter()
        groups = stratified_record_groups(train, hp.folds, ctx.seed)
        labels = train.labels.astype(np.int64)
        with _deterministic(ctx.seed, ctx.device):
            oof, fold_losses = self._out_of_fold(hp, train, groups, ctx)
            scores = []
            for epoch in range(hp.max_epochs):
                weights, best = choose_class_weights(oof[epoch], labels)
                metrics = _val_metrics(oof[epoch], labels, "val_", weights)
                metrics["train_loss"] = float(fold_losses[:, epoch].mean())
                ctx.log_metrics(metrics, epoch + 1)
                scores.append(best)
            smoothed = np.convolve(np.pad(scores, 1, mode="edge"), np.ones(3) / 3, mode="valid")
            chosen = int(np.argmax(smoothed)) + 1
            class_weights = choose_operating_point(oof[chosen - 1], labels, train.records)
            # Named apart from the per-epoch val_* curves (those are at each epoch's best point).
            cv = _val_metrics(oof[chosen - 1], labels, "cv_", class_weights)
            ctx.status(
                f"BiLSTM: {chosen} epochs, operating point {_fmt(class_weights)}; out-of-fold "
                f"S {cv['cv_S_sensitivity']:.3f}/{cv['cv_S_ppv']:.3f}, "
                f"V {cv['cv_V_sensitivity']:.3f}/{cv['cv_V_ppv']:.3f} (Se/+P)"
            )
            final = _Fit(hp, train, ctx, seed=ctx.seed)
            for epoch in ctx.progress(range(chosen), "BiLSTM final fit", chosen):
                ctx.log_metrics({"final_train_loss": final.epoch()}, epoch + 1)
        model = final.model
        model.class_weights = class_weights
        params: dict[str, Any] = {
            **{f"bilstm.{k}": _param(v) for k, v in asdict(hp).items()},
            "bilstm.sequence_length": train.config.sequence_length,
            "bilstm.steps": model.config.steps,
            "bilstm.n_parameters": sum(p.numel() for n in model.networks for p in n.parameters()),
            "bilstm.optimizer": "AdamW, cosine decay over max_epochs, grad-norm clip",
            "bilstm.loss": "cross-entropy (unweighted)",
            "imbalance": IMBALANCE_STRATEGY,
            "selection": SELECTION,
            "val_records": ";".join(",".join(g) for g in groups),
            "epochs_trained": hp.max_epochs,
            "epochs_chosen": chosen,
            "operating_point": _fmt(class_weights),
        }
        model.params = dict(params)
        selection = {
            **{k: v for k, v in cv.items() if not k.endswith("loss")},
            "cv_best_macro_f1": scores[chosen - 1],
            "fit_train_seconds": time.perf_counter() - started,
        }
        return FitResult(classifier=model.to("cpu"), params=params, selection_metrics=selection)

    @staticmethod
    def _out_of_fold(
        hp: BiLSTMHyperParams, train: BeatDataset, groups: list[list[str]], ctx: TrainingContext
    ) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float64]]:
        """(epochs, n, classes) held-out probabilities and (folds, epochs) training losses."""
        labels = train.labels.astype(np.int64)
        oof = np.zeros((hp.max_epochs, len(train), len(AAMI_CLASSES)), np.float32)
        losses = np.zeros((len(groups), hp.max_epochs))
        for i, group in enumerate(groups):
            name = f"fold{i + 1}"
            held_out = np.isin(train.records, group)
            counts = train.select(held_out).class_counts()
            ctx.status(f"BiLSTM {name}/{len(groups)}: holding out {','.join(group)} {counts}")
            run = _Fit(hp, train.select(~held_out), ctx, seed=ctx.seed + 1000 * (i + 1))
            bar = ctx.progress(range(hp.max_epochs), f"BiLSTM {name}/{len(groups)}", hp.max_epochs)
            for epoch in bar:
                losses[i, epoch] = run.epoch()
                proba = run.model.raw_proba(
                    train.windows[held_out], train.templates[held_out], train.features[held_out]
                )
                oof[epoch, held_out] = proba
                weights, _ = choose_class_weights(proba, labels[held_out])
                metrics = _val_metrics(proba, labels[held_out], f"{name}_val_", weights)
                metrics[f"{name}_train_loss"] = losses[i, epoch]
                ctx.log_metrics(metrics, epoch + 1)
        return oof, losses


class _Fit:
    """``hp.ensemble`` networks trained on one set of records, an epoch at a time."""

    def __init__(
        self, hp: BiLSTMHyperParams, data: BeatDataset, ctx: TrainingContext, seed: int
    ) -> None:
        self.hp = hp
        self.device = torch.device(ctx.device)
        scaler = ContextScaler.fit(data.features, hp.context_features)
        raw = input_channels(data.windows, data.templates, hp.inputs)
        input_scale = tuple(float(raw[:, c].std()) or 1.0 for c in range(raw.shape[1]))
        raw /= np.asarray(input_scale, np.float32)[:, None]
        self.inputs = torch.from_numpy(raw).to(self.device)
        self.context = torch.from_numpy(scaler.transform(data.features)).to(self.device)
        self.labels = torch.from_numpy(data.labels.astype(np.int64)).to(self.device)
        self.p = sampling_probabilities(data.labels, data.records, hp.class_power, hp.record_power)
        length = data.windows.shape[1]
        self.members = [_Member(hp, length, self.device, seed + m) for m in range(hp.ensemble)]
        self.model = BiLSTMBeatModel(
            networks=[m.network for m in self.members],
            scaler=scaler,
            input_scale=input_scale,
            device=ctx.device,
        )
        self.loss = nn.CrossEntropyLoss()

    def epoch(self) -> float:
        """Train every member one epoch; returns their mean training loss."""
        return float(np.mean([self._member_epoch(m) for m in self.members]))

    def _member_epoch(self, member: _Member) -> float:
        hp, network = self.hp, member.network
        torch.manual_seed(member.seed + 7919 * member.epochs)  # the sequence-dropout draws
        network.train()
        order = torch.from_numpy(member.rng.choice(len(self.p), hp.samples_per_epoch, p=self.p))
        total = 0.0
        for start in range(0, len(order), hp.batch_size):
            idx = order[start : start + hp.batch_size].to(self.device)
            inputs = _augment(self.inputs[idx], hp, member.gen)
            loss = self.loss(network(inputs, self.context[idx]), self.labels[idx])
            member.optimiser.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(network.parameters(), hp.grad_clip)
            member.optimiser.step()
            total += loss.item() * len(idx)
        member.schedule.step()
        member.epochs += 1
        network.eval()
        return total / len(order)


class _Member:
    """One network with its optimiser, schedule and random streams."""

    def __init__(
        self, hp: BiLSTMHyperParams, sequence_length: int, device: torch.device, seed: int
    ) -> None:
        self.seed = seed
        self.epochs = 0
        torch.manual_seed(seed)  # initial weights
        self.network = BiLSTMNet(hp.architecture(sequence_length)).to(device)
        self.rng = np.random.default_rng(seed)  # which beats each epoch draws
        self.gen = torch.Generator(device="cpu").manual_seed(seed)  # augmentation
        self.optimiser = torch.optim.AdamW(
            self.network.parameters(), lr=hp.lr, weight_decay=hp.weight_decay
        )
        self.schedule = torch.optim.lr_scheduler.CosineAnnealingLR(self.optimiser, hp.max_epochs)


def _val_metrics(
    proba: FloatArray, labels: Labels, prefix: str, weights: tuple[float, ...]
) -> dict[str, float]:
    """Held-out loss and class metrics at the operating point ``weights``."""
    shifted = apply_prior_shift(proba, weights)
    return {
        f"{prefix}loss": _nll(proba, labels),
        f"{prefix}balanced_loss": _balanced_nll(proba, labels),
        **class_metrics(confusion(labels, shifted.argmax(axis=1)), prefix=prefix),
    }


def sampling_probabilities(
    labels: npt.NDArray[np.integer],
    records: npt.NDArray[np.str_],
    class_power: float,
    record_power: float,
) -> npt.NDArray[np.float64]:
    """Per-beat probability of being drawn (sums to 1); see the module docstring."""
    k = len(AAMI_CLASSES)
    counts = np.bincount(labels, minlength=k).astype(np.float64)
    rare = counts < MIN_BALANCED_BEATS
    share = np.where(rare, 0.0, counts**class_power)
    balanced = share / share.sum() if share.sum() else np.zeros(k)
    natural = counts / counts.sum()
    # Rare classes keep their natural share; the rest of the mass is balanced.
    class_share = np.where(rare, natural, balanced * (1.0 - natural[rare].sum()))
    p = np.zeros(len(labels))
    for c in np.flatnonzero(counts):
        members = labels == c
        _, inverse, per_record = np.unique(
            records[members], return_inverse=True, return_counts=True
        )
        record_share = per_record.astype(np.float64) ** record_power
        record_share /= record_share.sum()
        p[members] = class_share[c] * record_share[inverse] / per_record[inverse]
    return np.asarray(p / p.sum(), dtype=np.float64)


def stratified_record_groups(train: BeatDataset, k: int, seed: int) -> list[list[str]]:
    """``k`` groups of whole records, deterministic for ``seed``, each with S and V beats.

    Of 2000 random partitions (seeded) into groups of near-equal record count, keeps the one whose
    worst group share of the S beats or of the V beats is largest.
    """
    names = np.array(sorted(train.record_names))
    if len(names) < 2:
        raise ValueError("patient-grouped validation needs at least two records")
    k = min(k, len(names))
    per_class = [
        np.array([np.sum((train.records == r) & (train.labels == c)) for r in names], float)
        for c in (AAMI_CLASSES.index("S"), AAMI_CLASSES.index("V"))
    ]
    rng = np.random.default_rng(seed)
    best: tuple[float, list[list[str]]] | None = None
    for _ in range(2000):
        order = rng.permutation(len(names))
        groups = [np.sort(order[i::k]) for i in range(k)]
        score = min(
            counts[g].sum() / counts.sum() if counts.sum() else 1.0
            for counts in per_class
            for g in groups
        )
        if best is None or score > best[0] + 1e-12:
            best = (score, [names[g].tolist() for g in groups])
    assert best is not None
    return best[1]


def _augment(inputs: torch.Tensor, hp: BiLSTMHyperParams, gen: torch.Generator) -> torch.Tensor:
    """Per beat: one small time shift and amplitude scale for all channels, white noise each.

    Shifting the difference channel shifts the window and its template together (the template is
    aligned the same way as the beat), so the augmentation never invents a QRS mismatch.
    """
    n, channels, length = inputs.shape
    device = inputs.device
    if hp.max_shift:
        shift = torch.randint(-hp.max_shift, hp.max_shift + 1, (n, 1, 1), generator=gen)
        index = (torch.arange(length)[None, None, :] + shift).clamp_(0, length - 1)
        inputs = torch.gather(inputs, 2, index.expand(n, channels, length).to(device))
    scale = 1.0 + hp.amplitude_jitter * (2 * torch.rand(n, 1, 1, generator=gen) - 1)
    noise = hp.noise_std * torch.randn(n, channels, length, generator=gen)
    return inputs * scale.to(device) + noise.to(device)


def _nll(proba: FloatArray, labels: Labels) -> float:
    picked = proba[np.arange(len(labels)), labels]
    return float(-np.mean(np.log(np.maximum(picked, 1e-7)))) if len(labels) else 0.0


def _balanced_nll(proba: FloatArray, labels: Labels) -> float:
    """Mean over the reported classes present of each class's mean negative log-likelihood."""
    per_class = [
        _nll(proba[labels == c], labels[labels == c])
        for c in (AAMI_CLASSES.index(name) for name in REPORTED_CLASSES)
        if np.any(labels == c)
    ]
    return float(np.mean(per_class)) if per_class else 0.0


def _param(value: Any) -> Any:
    return ",".join(map(str, value)) if isinstance(value, tuple) else value


def _fmt(weights: tuple[float, ...]) -> str:
    return ",".join(f"{c}={w:g}" for c, w in zip(AAMI_CLASSES, weights, strict=True))


@contextlib.contextmanager
def _deterministic(seed: int, device: str) -> Iterator[None]:
    """Seed torch and, on a GPU, ask for deterministic kernels for the duration of a fit.

    The CPU kernels a fit uses are deterministic already; the switch itself imports torch's
    compiler stack (~3 s per process), so the CPU path skips it.
    """
    torch.manual_seed(seed)
    if device == "cpu":
        yield
        return
    previous = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(previous)
