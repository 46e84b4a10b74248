"""HeartEye training: learn beat classifiers on DS1, evaluate once on DS2, log and register in MLflow."""
