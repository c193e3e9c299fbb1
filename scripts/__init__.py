"""Scripts of the project: the two-node demo and the measurements."""
