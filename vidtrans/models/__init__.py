"""Networks, checkpoints and the inference wrapper."""
