"""The evaluate stage's forward passes (probabilities per protocol)."""
