"""AAMI EC57 beat classes and the de Chazal inter-patient split of the MIT-BIH Arrhythmia Database."""

from __future__ import annotations

from typing import Final

#: The five AAMI EC57 heartbeat classes, in the order model outputs use.
AAMI_CLASSES: Final[tuple[str, ...]] = ("N", "S", "V", "F", "Q")

#: MIT-BIH beat annotation symbol -> AAMI class. Symbols not listed are not beats
#: (rhythm, noise and comment annotations) and are skipped.
AAMI_MAP: Final[dict[str, str]] = {
    # N: normal, bundle branch blocks, escape beats
    "N": "N", "L": "N", "R": "N", "e": "N", "j": "N",
    # S: supraventricular ectopic
    "A": "S", "a": "S", "J": "S", "S": "S",
    # V: ventricular ectopic
    "V": "V", "E": "V",
    # F: fusion of ventricular and normal
    "F": "F",
    # Q: paced, fusion of paced and normal, unclassifiable
    "/": "Q", "f": "Q", "Q": "Q",
}  # fmt: skip

#: Paced records, excluded by the AAMI EC57 convention.
PACED_RECORDS: Final[tuple[str, ...]] = ("102", "104", "107", "217")

#: de Chazal, O'Dwyer, Reilly (IEEE TBME 2004) inter-patient split: train on DS1, test on DS2.
DS1: Final[tuple[str, ...]] = (
    "101", "106", "108", "109", "112", "114", "115", "116", "118", "119", "122",
    "124", "201", "203", "205", "207", "208", "209", "215", "220", "223", "230",
)  # fmt: skip
DS2: Final[tuple[str, ...]] = (
    "100", "103", "105", "111", "113", "117", "121", "123", "200", "202", "210",
    "212", "213", "214", "219", "221", "222", "228", "231", "232", "233", "234",
)  # fmt: skip
SPLITS: Final[dict[str, tuple[str, ...]]] = {"DS1": DS1, "DS2": DS2}

#: Every record of the database (48), for download and verification.
ALL_RECORDS: Final[tuple[str, ...]] = (
    "100", "101", "102", "103", "104", "105", "106", "107", "108", "109", "111", "112",
    "113", "114", "115", "116", "117", "118", "119", "121", "122", "123", "124", "200",
    "201", "202", "203", "205", "207", "208", "209", "210", "212", "213", "214", "215",
    "217", "219", "220", "221", "222", "223", "228", "230", "231", "232", "233", "234",
)  # fmt: skip

#: Name of the split protocol, recorded on every registered version and checked by the gate.
SPLIT_PROTOCOL: Final[str] = "inter-patient-DS1-DS2"
