"""HeartEye's shared ECG domain: records, labels, preprocessing, datasets, the model wrapper, registry helpers."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("hearteye")
except PackageNotFoundError:  # pragma: no cover - running from a source tree without install
    __version__ = "0.0.0"
