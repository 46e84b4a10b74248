"""Published inter-patient results on MIT-BIH DS2, the yardsticks every model is compared with."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final


@dataclass(frozen=True)
class Anchor:
    """Sensitivity and positive predictivity (fractions) for S and V beats on DS2."""

    name: str
    citation: str
    s_sensitivity: float
    s_ppv: float
    v_sensitivity: float
    v_ppv: float

    def as_metrics(self) -> dict[str, float]:
        """The anchor under the metric names training logs."""
        return {
            "ds2_S_sensitivity": self.s_sensitivity,
            "ds2_S_ppv": self.s_ppv,
            "ds2_V_sensitivity": self.v_sensitivity,
            "ds2_V_ppv": self.v_ppv,
        }


DE_CHAZAL_2004: Final = Anchor(
    name="de Chazal 2004",
    citation="de Chazal, O'Dwyer, Reilly. IEEE TBME 51(7):1196-1206, 2004 (LDA, RR + morphology)",
    s_sensitivity=0.76,
    s_ppv=0.38,
    v_sensitivity=0.77,
    v_ppv=0.82,
)
SHI_2019: Final = Anchor(
    name="Shi 2019",
    citation="Shi et al. Computer Methods and Programs in Biomedicine 171:1-10, 2019 (weighted XGBoost)",
    s_sensitivity=0.917,
    s_ppv=0.462,
    v_sensitivity=0.951,
    v_ppv=0.881,
)
ANCHORS: Final = (DE_CHAZAL_2004, SHI_2019)
