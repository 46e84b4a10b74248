"""The DS2 metrics training records as version tags, read back as floats."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Final

#: Beat classes whose DS2 metrics training records (Q is too rare in DS2 to score).
METRIC_CLASSES: Final[tuple[str, ...]] = ("N", "S", "V", "F")

#: Every DS2 metric tag a registered version carries, in display order.
METRIC_TAGS: Final[tuple[str, ...]] = (
    *(f"ds2_{c}_{m}" for c in METRIC_CLASSES for m in ("sensitivity", "ppv", "f1")),
    "ds2_macro_f1",
    "ds2_accuracy",
)

#: The metrics `ml models list` shows per version.
KEY_METRICS: Final[tuple[str, ...]] = (
    "ds2_S_sensitivity",
    "ds2_S_ppv",
    "ds2_V_sensitivity",
    "ds2_V_ppv",
    "ds2_macro_f1",
    "ds2_accuracy",
)

#: Short column headings for the key metrics (Se = sensitivity, +P = positive predictivity).
SHORT_NAMES: Final[dict[str, str]] = {
    "ds2_S_sensitivity": "S Se",
    "ds2_S_ppv": "S +P",
    "ds2_V_sensitivity": "V Se",
    "ds2_V_ppv": "V +P",
    "ds2_macro_f1": "macro-F1",
    "ds2_accuracy": "accuracy",
}

SPLIT_PROTOCOL_TAG: Final[str] = "split_protocol"


def parse_metric(value: str | None) -> float | None:
    """A tag value as a fraction in [0, 1], or None when absent, not a number or out of range."""
    if value is None:
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    if not math.isfinite(number) or not 0.0 <= number <= 1.0:
        return None
    return number


def version_metrics(tags: Mapping[str, str]) -> dict[str, float]:
    """The valid ``ds2_*`` metrics among a version's tags (invalid values are left out)."""
    metrics: dict[str, float] = {}
    for key, raw in tags.items():
        if key.startswith("ds2_"):
            value = parse_metric(raw)
            if value is not None:
                metrics[key] = value
    order = {name: i for i, name in enumerate(METRIC_TAGS)}
    return dict(sorted(metrics.items(), key=lambda kv: (order.get(kv[0], len(order)), kv[0])))
