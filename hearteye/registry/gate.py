"""The promotion gate: absolute floors, no regression against production, protocol, smoke load.

:func:`metric_checks` and :func:`protocol_check` are pure; :func:`artifact_check` downloads the
version and runs serving's own load and smoke prediction on it (:mod:`hearteye.model.smoke`). :func:`evaluate_gate`
combines them into a :class:`GateResult` that lists every check, passed or not.
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from hearteye.errors import first_line
from hearteye.labels import SPLIT_PROTOCOL
from hearteye.model.smoke import SmokeTestError, load_and_check
from hearteye.registry.errors import RegistryError
from hearteye.registry.metrics import SPLIT_PROTOCOL_TAG, parse_metric
from hearteye.settings import HearteyeSettings
from hearteye.tracking import TrackingTarget

#: Absolute floors: metric tag -> settings field holding the value the candidate must exceed.
FLOORS: Final[dict[str, str]] = {
    "ds2_S_sensitivity": "gate_min_s_sensitivity",
    "ds2_S_ppv": "gate_min_s_ppv",
    "ds2_V_sensitivity": "gate_min_v_sensitivity",
    "ds2_V_ppv": "gate_min_v_ppv",
}

#: Metrics the candidate may not regress on (beyond the tolerance) against current production.
REGRESSION_METRICS: Final[tuple[str, ...]] = (
    "ds2_S_sensitivity",
    "ds2_S_ppv",
    "ds2_V_sensitivity",
    "ds2_V_ppv",
    "ds2_macro_f1",
)

_EPS = 1e-12


@dataclass(frozen=True)
class Check:
    """One gate check: the candidate's value, what it was compared with, and the outcome.

    ``overridable`` checks may be overridden with ``--force`` (and a reason); the artifact check
    never can: a version that does not load cannot serve.
    """

    name: str
    passed: bool
    value: float | str | None
    reference: float | str | None
    rule: str
    detail: str = ""
    overridable: bool = True

    def describe(self) -> str:
        """One line naming the check and both values."""
        value = _fmt(self.value)
        text = f"{self.name}: candidate {value}, required {self.rule}"
        return f"{text} ({self.detail})" if self.detail else text

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "passed": self.passed,
            "value": self.value,
            "reference": self.reference,
            "rule": self.rule,
            "detail": self.detail,
            "overridable": self.overridable,
        }


@dataclass(frozen=True)
class GateResult:
    """Every check run for one candidate; ``forced`` when failing checks were overridden."""

    model: str
    version: str
    production_version: str | None
    checks: tuple[Check, ...]
    forced: bool = False

    @property
    def passed(self) -> bool:
        return all(check.passed for check in self.checks)

    @property
    def failures(self) -> tuple[Check, ...]:
        return tuple(check for check in self.checks if not check.passed)

    @property
    def blocking(self) -> tuple[Check, ...]:
        """Failures that ``--force`` cannot override."""
        return tuple(check for check in self.failures if not check.overridable)

    def check(self, name: str) -> Check:
        for check in self.checks:
            if check.name == name:
                return check
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "version": self.version,
            "production_version": self.production_version,
            "passed": self.passed,
            "forced": self.forced,
            "checks": [check.to_dict() for check in self.checks],
        }


class GateRefusedError(RegistryError):
    """The candidate failed the gate; the message names every failing check with both values."""

    def __init__(self, result: GateResult, *, force_hint: bool = True) -> None:
        self.result = result
        lines = "; ".join(check.describe() for check in result.failures)
        hint = ""
        if force_hint and not result.blocking:
            hint = " (override with --force --reason TEXT)"
        elif result.blocking:
            hint = " (not overridable: the version's artifacts must load and predict)"
        super().__init__(
            f"gate refused {result.model} version {result.version}: "
            f"{len(result.failures)} failing check(s): {lines}{hint}"
        )


def metric_checks(
    candidate: Mapping[str, str],
    production: Mapping[str, str] | None,
    production_version: str | None,
    settings: HearteyeSettings,
) -> list[Check]:
    """Floors and regression checks over the candidate's and production's version tags (pure).

    Floors: the candidate must *exceed* each floor. Regression (only when a production version
    exists): the candidate must reach production's value minus the tolerance. A production version
    from another split protocol, or missing the metric, cannot be compared: that check fails
    (overridable), rather than comparing numbers that do not mean the same thing.
    """
    checks: list[Check] = []
    for metric, setting in FLOORS.items():
        floor = float(getattr(settings, setting))
        value = parse_metric(candidate.get(metric))
        checks.append(
            Check(
                name=f"floor {metric}",
                passed=value is not None and value > floor + _EPS,
                value=value,
                reference=floor,
                rule=f"> {floor:.4f}",
                detail="" if value is not None else _missing(metric, candidate),
            )
        )
    if production is None or production_version is None:
        return checks
    tolerance = float(settings.gate_regression_tolerance)
    comparable = production.get(SPLIT_PROTOCOL_TAG) == SPLIT_PROTOCOL
    for metric in REGRESSION_METRICS:
        value = parse_metric(candidate.get(metric))
        reference = parse_metric(production.get(metric))
        name = f"regression {metric}"
        if not comparable:
            checks.append(
                Check(
                    name=name,
                    passed=False,
                    value=value,
                    reference=reference,
                    rule=f"comparable production v{production_version}",
                    detail=f"production v{production_version} has split protocol "
                    f"{production.get(SPLIT_PROTOCOL_TAG)!r}, not {SPLIT_PROTOCOL!r}",
                )
            )
            continue
        if reference is None:
            checks.append(
                Check(
                    name=name,
                    passed=False,
                    value=value,
                    reference=None,
                    rule=f"production v{production_version} value - {tolerance:.4f}",
                    detail=f"production v{production_version}: {_missing(metric, production)}",
                )
            )
            continue
        limit = reference - tolerance
        checks.append(
            Check(
                name=name,
                passed=value is not None and value >= limit - _EPS,
                value=value,
                reference=reference,
                rule=f">= production v{production_version} {reference:.4f} - {tolerance:.4f}",
                detail="" if value is not None else _missing(metric, candidate),
            )
        )
    return checks


def evaluation_checks(candidate: Mapping[str, str], settings: HearteyeSettings) -> list[Check]:
    """One check per data set the settings require an evaluation on (pure, over version tags)."""
    from hearteye.registry.evaluations import version_evaluations

    floor = float(settings.gate_min_evaluation_macro_f1)
    found = version_evaluations(candidate)
    checks = []
    for digest_id in settings.required_evaluations:
        summary = found.get(digest_id)
        value = parse_metric(str(summary.get("macro_f1"))) if summary else None
        if summary is None:
            detail = (
                f"no evaluation on data set {digest_id}: run `ml evaluate MODEL VERSION "
                "--records DIR --log` on it"
            )
        else:
            detail = f"{summary.get('dataset', '?')}, run {summary.get('run_id', '?')}"
        checks.append(
            Check(
                name=f"evaluation {digest_id}",
                passed=value is not None and value >= floor - _EPS,
                value=value,
                reference=floor,
                rule=f"evaluated, macro-F1 >= {floor:.4f}",
                detail=detail,
            )
        )
    return checks


def protocol_check(candidate: Mapping[str, str]) -> Check:
    """The candidate's DS2 metrics come from the inter-patient DS1/DS2 protocol (pure)."""
    value = candidate.get(SPLIT_PROTOCOL_TAG)
    return Check(
        name="split protocol",
        passed=value == SPLIT_PROTOCOL,
        value=value,
        reference=SPLIT_PROTOCOL,
        rule=f"== {SPLIT_PROTOCOL}",
        detail="" if value is not None else f"version has no '{SPLIT_PROTOCOL_TAG}' tag",
    )


def artifact_check(model_uri: str, target: TrackingTarget) -> Check:
    """Download ``model_uri`` from ``target`` and run serving's load and smoke prediction on it.

    :func:`hearteye.model.smoke.load_and_check` is the check every serving worker runs before it
    swaps a version in, so the gate refuses what serving would refuse. Every failure (missing or
    corrupt files, no input example, a predict that raises, no beats, probabilities that are not
    finite and normalised) becomes a failed, non-overridable check naming the cause.
    """
    import mlflow

    rule = "loads, predicts its input example as serving does"
    try:
        with tempfile.TemporaryDirectory(prefix="hearteye-gate-") as tmp:
            local = mlflow.artifacts.download_artifacts(
                artifact_uri=model_uri,
                dst_path=tmp,
                tracking_uri=target.uri,
                registry_uri=target.uri,
            )
            checked = load_and_check(Path(local))
    except SmokeTestError as exc:
        return _artifact_failure(model_uri, rule, str(exc))
    except Exception as exc:  # a failed download is the check's answer too
        return _artifact_failure(model_uri, rule, f"download failed: {first_line(exc)}")
    return Check(
        name="artifacts",
        passed=True,
        value=f"{checked.beats} beat(s)",
        reference=model_uri,
        rule=rule,
        overridable=False,
    )


def evaluate_gate(
    model: str,
    version: str,
    candidate_tags: Mapping[str, str],
    production_version: str | None,
    production_tags: Mapping[str, str] | None,
    settings: HearteyeSettings,
    artifacts: Check | None,
) -> GateResult:
    """All checks for one candidate (pure given the artifact check's outcome)."""
    checks: list[Check] = [protocol_check(candidate_tags)]
    checks += metric_checks(candidate_tags, production_tags, production_version, settings)
    checks += evaluation_checks(candidate_tags, settings)
    if artifacts is not None:
        checks.append(artifacts)
    return GateResult(
        model=model, version=version, production_version=production_version, checks=tuple(checks)
    )


def with_forced(result: GateResult, forced: bool) -> GateResult:
    """The same result, marked as overridden or not."""
    return GateResult(
        model=result.model,
        version=result.version,
        production_version=result.production_version,
        checks=result.checks,
        forced=forced,
    )


def _artifact_failure(model_uri: str, rule: str, detail: str) -> Check:
    return Check(
        name="artifacts",
        passed=False,
        value="failed",
        reference=model_uri,
        rule=rule,
        detail=detail,
        overridable=False,
    )


def _missing(metric: str, tags: Mapping[str, str]) -> str:
    raw = tags.get(metric)
    if raw is None:
        return f"no '{metric}' tag"
    return f"'{metric}'={raw!r} is not a fraction in [0, 1]"


def _fmt(value: float | str | None) -> str:
    if value is None:
        return "missing"
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)
