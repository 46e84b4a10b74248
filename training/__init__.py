"""HeartEye training."""
