"""Bidirectional LSTM over the beat window, joined with RR and relative-morphology context.

The network reads each amplitude-normalised beat window (:attr:`Beats.windows`, 126 samples at
180 Hz) minus the patient's own reference beat (:attr:`Beats.templates`, the median of the least
premature neighbours), or the window itself, or both as two channels (:data:`INPUT_CHANNELS`), as
a sequence of short patches; pools the BiLSTM states (mean, max and the final state of each
direction), concatenates a vector of standardised context features (RR intervals and morphology
relative to the patient's own reference beat) and classifies with a small MLP. A model is a small
ensemble of such networks (same inputs, different seeds) whose softmax outputs
are averaged, then re-weighted by the operating point.

Importing this module imports torch; the rest of the shared package never does, so only a process
that loads or trains a BiLSTM pays for it. Loading needs nothing from ``training/``: the directory
written by :meth:`BiLSTMBeatModel.save` holds the weights (``network.pt``, a plain state dict) and
``meta.json`` (architecture, context features and their normalisation, operating point).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Final, Self

import numpy as np
import numpy.typing as npt
import torch
from torch import nn

from hearteye.labels import AAMI_CLASSES
from hearteye.model.base import ProbArray, apply_prior_shift
from hearteye.preprocess.beats import FEATURE_NAMES, Beats

#: Context features joined with the sequence summary: the RR context (intervals and their
#: ratios to the local and global rhythm) and the morphology measured relative to the patient's own
#: reference beat or QRS amplitude. Raw waveform samples are left out (the LSTM reads the window).
#: Unlike the trees (``xgboost_model.DEFAULT_FEATURES``), the network keeps absolute RR, the
#: template correlation and the P-wave consistency: on DS1's grouped cross-validation dropping
#: them lowered the held-out S +P (0.30-0.36 vs 0.40-0.42 at the chosen operating points).
CONTEXT_FEATURES: Final[tuple[str, ...]] = (
    "pre_rr",
    "post_rr",
    "local_rr",
    "global_rr",
    "pre_over_local",
    "post_over_local",
    "pre_over_post",
    "pre_over_global",
    "post_over_global",
    "local_over_global",
    "pre_over_prev",
    "rr_irregularity",
    "qrs_p2p_rel",
    "template_corr",
    "template_rms_rel",
    "qrs_width_s",
    "p_energy_rel",
    "t_max_rel",
    "t_min_rel",
    "qrs_energy_rel",
    "p_corr",
    "p_energy_over_template",
    "p_consistency",
    "rr_irregular_fraction",
)
#: Non-negative, heavy-tailed features (intervals, ratios, energies; pauses reach 100 s) are
#: log-transformed before standardisation so one long pause cannot dominate the scale.
LOG_FEATURES: Final[frozenset[str]] = frozenset(
    {
        "pre_rr",
        "post_rr",
        "local_rr",
        "global_rr",
        "pre_over_local",
        "post_over_local",
        "pre_over_post",
        "pre_over_global",
        "post_over_global",
        "local_over_global",
        "pre_over_prev",
        "rr_irregularity",
        "qrs_p2p_rel",
        "template_rms_rel",
        "qrs_width_s",
        "p_energy_rel",
        "qrs_energy_rel",
        "p_energy_over_template",
    }
)
#: Offset inside the log (features can be exactly 0).
LOG_EPS: Final = 1e-4
#: Standardised context values are clipped to ±this many training standard deviations.
CONTEXT_CLIP: Final = 6.0

WEIGHTS_FILE = "network.pt"
META_FILE = "meta.json"
#: Bump when the saved layout changes incompatibly (2: named input channels, one scale each).
FORMAT_VERSION = 2

#: Sequences the network can read, one channel each: the beat window, and the window minus the
#: beat's reference template (what sets this beat apart from the patient's own normal beat).
INPUT_CHANNELS: Final[tuple[str, ...]] = ("window", "difference")


@dataclass(frozen=True)
class BiLSTMConfig:
    """Architecture hyper-parameters (saved with the model; enough to rebuild the network)."""

    #: Samples per beat window (``PreprocessConfig.sequence_length``).
    sequence_length: int = 126
    #: Consecutive window samples fed to the LSTM as one time step (126 / 6 = 21 steps of 33 ms:
    #: the same information as one sample a step, at a fifth of the CPU cost per epoch).
    patch: int = 6
    #: Input channels, in order (names from :data:`INPUT_CHANNELS`).
    inputs: tuple[str, ...] = ("difference",)
    #: LSTM hidden units per direction, and stacked layers.
    hidden: int = 16
    layers: int = 1
    #: Width of the MLP head's hidden layer, and its dropout.
    head_hidden: int = 64
    dropout: float = 0.5
    #: Training only: the probability that a beat's whole sequence summary is zeroed, so the
    #: head learns to classify from the context features alone and uses the (patient-specific)
    #: waveform as a refinement rather than its main cue.
    sequence_dropout: float = 0.5
    #: Number of context features (``len(CONTEXT_FEATURES)`` unless chosen otherwise).
    n_context: int = len(CONTEXT_FEATURES)
    n_classes: int = len(AAMI_CLASSES)

    def __post_init__(self) -> None:
        if self.sequence_length % self.patch:
            raise ValueError(f"patch {self.patch} does not divide {self.sequence_length} samples")
        object.__setattr__(self, "inputs", tuple(self.inputs))  # a list when read from JSON
        unknown = [name for name in self.inputs if name not in INPUT_CHANNELS]
        if unknown or not self.inputs or len(set(self.inputs)) < len(self.inputs):
            raise ValueError(f"inputs must be distinct names from {INPUT_CHANNELS}: {self.inputs}")

    @property
    def channels(self) -> int:
        return len(self.inputs)

    @property
    def steps(self) -> int:
        return self.sequence_length // self.patch


class BiLSTMNet(nn.Module):
    """inputs (B, channels, sequence_length) + context (B, n_context) -> logits (B, classes).

    Each time step sees ``patch`` consecutive samples of every channel.
    """

    def __init__(self, config: BiLSTMConfig) -> None:
        super().__init__()
        self.config = config
        self.lstm = nn.LSTM(
            input_size=config.channels * config.patch,
            hidden_size=config.hidden,
            num_layers=config.layers,
            batch_first=True,
            bidirectional=True,
            dropout=config.dropout if config.layers > 1 else 0.0,
        )
        summary = 3 * 2 * config.hidden  # mean, max and final state, both directions
        self.head = nn.Sequential(
            nn.Linear(summary + config.n_context, config.head_hidden),
            nn.ReLU(),
            nn.Dropout(config.dropout),
            nn.Linear(config.head_hidden, config.n_classes),
        )

    def forward(self, inputs: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        cfg = self.config
        # (B, C, steps*patch) -> (B, steps, C*patch): a step holds every channel's patch.
        seq = inputs.reshape(inputs.shape[0], cfg.channels, cfg.steps, cfg.patch)
        seq = seq.transpose(1, 2).reshape(inputs.shape[0], cfg.steps, cfg.channels * cfg.patch)
        out, (h_n, _) = self.lstm(seq)  # out: (B, steps, 2*hidden); h_n: (2*layers, B, hidden)
        last = torch.cat((h_n[-2], h_n[-1]), dim=1)  # top layer, forward and backward
        summary = torch.cat((out.mean(dim=1), out.amax(dim=1), last), dim=1)
        if self.training and cfg.sequence_dropout > 0:
            keep = torch.rand(summary.shape[0], 1, device=summary.device) >= cfg.sequence_dropout
            summary = summary * keep
        return self.head(torch.cat((summary, context), dim=1))


@dataclass(frozen=True)
class ContextScaler:
    """log (for :data:`LOG_FEATURES`) -> (x - mean) / std -> clip, per context feature."""

    names: tuple[str, ...]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    # Hoisted out of transform(): column indices and float32 constants.
    _columns: npt.NDArray[np.intp] = field(init=False, repr=False, compare=False)
    _logged: npt.NDArray[np.bool_] = field(init=False, repr=False, compare=False)
    _mean: npt.NDArray[np.float32] = field(init=False, repr=False, compare=False)
    _inv_std: npt.NDArray[np.float32] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        unknown = set(self.names) - set(FEATURE_NAMES)
        if unknown:
            raise ValueError(f"unknown features: {sorted(unknown)}")
        if not len(self.names) == len(self.mean) == len(self.std):
            raise ValueError("context names, means and standard deviations differ in length")
        columns = np.array([FEATURE_NAMES.index(n) for n in self.names], dtype=np.intp)
        object.__setattr__(self, "_columns", columns)
        object.__setattr__(self, "_logged", np.array([n in LOG_FEATURES for n in self.names]))
        object.__setattr__(self, "_mean", np.asarray(self.mean, np.float32))
        object.__setattr__(self, "_inv_std", np.asarray([1.0 / s for s in self.std], np.float32))

    @classmethod
    def fit(cls, features: npt.NDArray[np.float32], names: tuple[str, ...]) -> ContextScaler:
        """Statistics of the full feature matrix ``features`` (columns as FEATURE_NAMES)."""
        unit = cls(names, (0.0,) * len(names), (1.0,) * len(names))
        raw = unit._logged_columns(features)
        std = raw.std(axis=0)
        return cls(
            names=names,
            mean=tuple(float(v) for v in raw.mean(axis=0)),
            std=tuple(float(v) if v > 1e-6 else 1.0 for v in std),
        )

    def transform(self, features: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        """(n, len(names)) float32 model context from the full feature matrix."""
        x = self._logged_columns(features)
        x -= self._mean
        x *= self._inv_std
        np.clip(x, -CONTEXT_CLIP, CONTEXT_CLIP, out=x)
        return x

    def _logged_columns(self, features: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        x = np.asarray(features[:, self._columns], dtype=np.float32)  # fancy indexing copies
        logged = self._logged
        x[:, logged] = np.log(np.maximum(x[:, logged], 0.0) + LOG_EPS)
        return x


def input_channels(
    windows: npt.NDArray[np.float32],
    templates: npt.NDArray[np.float32],
    inputs: tuple[str, ...],
    scale: tuple[float, ...] | None = None,
) -> npt.NDArray[np.float32]:
    """(n, len(inputs), sequence_length) float32 channels, each divided by its ``scale``."""
    channels = []
    for i, name in enumerate(inputs):
        x = windows - templates if name == "difference" else windows
        x = np.asarray(x, dtype=np.float32)
        channels.append(x / np.float32(scale[i]) if scale is not None else x)
    return np.stack(channels, axis=1)


@dataclass
class BiLSTMBeatModel:
    """Trained :class:`BiLSTMNet` ensemble members, their context normalisation, the operating point.

    The members share the architecture and the normalisation (they were trained on the same
    records with different seeds); their softmax outputs are averaged.
    """

    networks: list[BiLSTMNet]
    scaler: ContextScaler
    #: Each input channel is divided by its scale (the channel's standard deviation in training).
    input_scale: tuple[float, ...] = (1.0,)
    class_weights: tuple[float, ...] = (1.0,) * len(AAMI_CLASSES)
    params: dict[str, Any] = field(default_factory=dict)
    #: Beats per forward pass at inference (bounds memory for very long inputs).
    batch_size: int = 4096
    device: str = "cpu"
    kind: str = "bilstm"

    def __post_init__(self) -> None:
        if not self.networks:
            raise ValueError("a BiLSTM model needs at least one network")
        if any(net.config != self.config for net in self.networks):
            raise ValueError("ensemble members differ in architecture")
        if len(self.scaler.names) != self.config.n_context:
            raise ValueError("the scaler's features do not match the network's context size")
        if len(self.input_scale) != self.config.channels:
            raise ValueError("one input scale per input channel is needed")
        for net in self.networks:
            net.eval()

    @property
    def config(self) -> BiLSTMConfig:
        return self.networks[0].config

    def inputs(
        self, windows: npt.NDArray[np.float32], templates: npt.NDArray[np.float32]
    ) -> npt.NDArray[np.float32]:
        """(n, channels, sequence_length) scaled network input (see :func:`input_channels`)."""
        return input_channels(windows, templates, self.config.inputs, self.input_scale)

    def raw_proba(
        self,
        windows: npt.NDArray[np.float32],
        templates: npt.NDArray[np.float32],
        features: npt.NDArray[np.float32],
    ) -> ProbArray:
        """Mean softmax of the members (before the operating point), ``batch_size`` beats a pass."""
        n = len(windows)
        if n == 0:
            return np.zeros((0, len(AAMI_CLASSES)), np.float32)
        device = torch.device(self.device)
        context = torch.from_numpy(self.scaler.transform(features)).to(device)
        seq = torch.from_numpy(self.inputs(windows, templates)).to(device)
        out = np.empty((n, len(AAMI_CLASSES)), np.float32)
        with torch.inference_mode():
            for start in range(0, n, self.batch_size):
                stop = min(start + self.batch_size, n)
                w = seq[start:stop]
                c = context[start:stop]
                total = torch.softmax(self.networks[0](w, c), dim=1)
                for net in self.networks[1:]:
                    total += torch.softmax(net(w, c), dim=1)
                out[start:stop] = (total / len(self.networks)).cpu().numpy()
        return out

    def predict_proba(self, beats: Beats) -> ProbArray:
        proba = self.raw_proba(beats.windows, beats.templates, beats.features)
        return apply_prior_shift(proba, self.class_weights)

    def to(self, device: str) -> Self:
        """Move the networks to ``device`` ("cpu" or "cuda")."""
        for net in self.networks:
            net.to(torch.device(device))
        self.device = device
        return self

    def save(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        state = {
            f"{i}.{k}": v.detach().cpu()
            for i, net in enumerate(self.networks)
            for k, v in net.state_dict().items()
        }
        torch.save(state, directory / WEIGHTS_FILE)
        meta = {
            "kind": self.kind,
            "format_version": FORMAT_VERSION,
            "architecture": asdict(self.config),
            "members": len(self.networks),
            "context_features": list(self.scaler.names),
            "context_mean": list(self.scaler.mean),
            "context_std": list(self.scaler.std),
            "input_scale": list(self.input_scale),
            "class_weights": list(self.class_weights),
            "params": self.params,
            "torch_version": torch.__version__,
        }
        (directory / META_FILE).write_text(json.dumps(meta, indent=2, sort_keys=True))

    @classmethod
    def load(cls, directory: Path, *, num_threads: int | None = 1) -> Self:
        """Read a model written by :meth:`save`, on the CPU.

        ``num_threads`` sets torch's intra-op threads for the process (``None`` leaves it alone):
        serving runs several workers and parallelises across requests, so by default one forward
        pass uses one core, as the XGBoost model does.
        """
        meta = _upgrade_meta(json.loads((directory / META_FILE).read_text()))
        if num_threads is not None:
            torch.set_num_threads(num_threads)
        config = BiLSTMConfig(**meta["architecture"])
        state = torch.load(directory / WEIGHTS_FILE, map_location="cpu", weights_only=True)
        networks = []
        for i in range(int(meta["members"])):
            net = BiLSTMNet(config)
            prefix = f"{i}."
            net.load_state_dict(
                {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
            )
            networks.append(net)
        scaler = ContextScaler(
            names=tuple(meta["context_features"]),
            mean=tuple(meta["context_mean"]),
            std=tuple(meta["context_std"]),
        )
        return cls(
            networks=networks,
            scaler=scaler,
            input_scale=tuple(float(v) for v in meta["input_scale"]),
            class_weights=tuple(meta["class_weights"]),
            params=dict(meta.get("params", {})),
        )


def _upgrade_meta(meta: dict[str, Any]) -> dict[str, Any]:
    """``meta.json`` in the current format; format 1 read one channel, the window."""
    version = meta.get("format_version")
    if version == 1:
        meta = dict(meta, format_version=FORMAT_VERSION)
        meta["architecture"] = dict(meta["architecture"], inputs=["window"])
        meta["input_scale"] = [meta.pop("window_scale")]
    elif version != FORMAT_VERSION:
        raise ValueError(f"unsupported BiLSTM model format {version!r}")
    return meta
