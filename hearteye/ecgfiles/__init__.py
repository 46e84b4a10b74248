"""Reading ECG recordings as they come out of equipment and databases (WFDB, EDF/EDF+/BDF, CSV).

Every reader returns one :class:`Recording` (every usable lead in mV, the sampling rate, the lead
names, the reference beats when the files carry them) or raises :class:`RecordingFileError` with
a message for the person who uploaded the files. Heavy libraries are imported inside functions.
"""

from hearteye.ecgfiles.read import read_recording, recording_format
from hearteye.ecgfiles.recording import (
    Limits,
    Recording,
    RecordingFileError,
    ReferenceBeats,
    choose_lead,
)

__all__ = [
    "Limits",
    "Recording",
    "RecordingFileError",
    "ReferenceBeats",
    "choose_lead",
    "read_recording",
    "recording_format",
]
