"""Compile the preprocessing's numba kernels into numba's on-disk cache ahead of time.

    python -m hearteye.preprocess.warmup

Run by ``make install`` and the app image build, so a fresh process's first strip loads compiled
code (about a second) instead of compiling it (tens of seconds on a small machine).
"""

from __future__ import annotations

from hearteye.preprocess.beats import rr_features
from hearteye.preprocess.config import PreprocessConfig
from hearteye.preprocess.fingerprint import synthetic_ecg
from hearteye.preprocess.pipeline import preprocess


def compile_kernels(config: PreprocessConfig | None = None) -> None:
    """Run the pipeline the ways training and serving call it: detected and given R peaks, at the
    canonical rate and resampled; every kernel is compiled for the argument types it gets there."""
    config = config or PreprocessConfig()
    for fs in (float(config.fs), 250.0):
        strip = preprocess(synthetic_ecg(fs), fs, config)
        preprocess(synthetic_ecg(fs), fs, config, r_peaks=strip.samples)
        rr_features(strip.beats.peaks, config)


if __name__ == "__main__":
    compile_kernels()
