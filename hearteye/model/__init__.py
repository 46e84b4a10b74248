"""Beat classifiers and the MLflow pyfunc wrapper that ships them with the preprocessing."""
