"""HeartEye cli."""
