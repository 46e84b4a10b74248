"""Which input channels should the BiLSTM read? Full trainings, one per channel set and seed.

    .venv/bin/python scripts/compare_bilstm_inputs.py [--inputs window difference window+difference]
        [--seeds 0 1] [--home .hearteye/experiments/bilstm-inputs]

Each training is a real ``ml train bilstm`` run (``training.run.train``) with only the input
channels changed, logged and registered in a scratch embedded store under ``--home`` (never the
developer's own store). The table shows, per run, what the choice may be based on, DS1's pooled
out-of-fold macro-F1 of the patient-grouped cross-validation (``cv_best_macro_f1``: the score the
trainer selects epochs by), next to DS2 figures, which are shown but must not decide.
"""

from __future__ import annotations

import argparse
import os
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--inputs", nargs="+", default=["window", "difference", "window+difference"]
    )
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    parser.add_argument("--home", type=Path, default=ROOT / ".hearteye/experiments/bilstm-inputs")
    args = parser.parse_args()

    from hearteye.settings import HearteyeSettings
    from training.bilstm_trainer import FULL, BiLSTMTrainer
    from training.run import train

    print("| inputs | seed | DS1 CV macro-F1 | DS2 S Se/+P | DS2 V Se/+P | DS2 macro-F1 | time s |")
    print("|---|---|---|---|---|---|---|")
    for inputs in args.inputs:
        for seed in args.seeds:
            home = (args.home / f"{inputs}-{seed}").resolve()
            home.mkdir(parents=True, exist_ok=True)
            os.environ["HEARTEYE_HOME"] = str(home)
            os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{home / 'mlflow.db'}"
            trainer = BiLSTMTrainer(hparams=replace(FULL, inputs=tuple(inputs.split("+"))))
            result = train("bilstm", HearteyeSettings(), seed=seed, device="cpu", trainer=trainer)
            m = result.metrics
            print(
                f"| {inputs} | {seed} | {result.selection_metrics['cv_best_macro_f1']:.3f} "
                f"| {_pct(m, 'S')} | {_pct(m, 'V')} | {m['ds2_macro_f1']:.3f} "
                f"| {result.duration_s:.0f} |",
                flush=True,
            )


def _pct(metrics: dict[str, float], cls: str) -> str:
    se, ppv = metrics[f"ds2_{cls}_sensitivity"], metrics[f"ds2_{cls}_ppv"]
    return f"{100 * se:.1f} / {100 * ppv:.1f}"


if __name__ == "__main__":
    main()
