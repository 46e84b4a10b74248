"""MLflow "models from code" entry: MLflow copies this file into each logged model and runs it at load.

Never imported by HeartEye itself; calling :func:`mlflow.models.set_model` here is the mechanism
by which MLflow learns which :class:`~mlflow.pyfunc.PythonModel` to instantiate (no pickling).
"""

import mlflow

from hearteye.model.wrapper import ECGBeatModel

mlflow.models.set_model(ECGBeatModel())
