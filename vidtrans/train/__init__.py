"""Training support: the synthetic pose2person character and image-quality metrics."""
