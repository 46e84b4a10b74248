"""ECG preprocessing: one pure numpy implementation, used by training and shipped inside every model."""

from hearteye.preprocess.config import PreprocessConfig

__all__ = ["PreprocessConfig"]
