"""What a model saw and said: the reference profile logged with every model, and drift from it."""
