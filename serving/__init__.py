"""HeartEye serving."""
