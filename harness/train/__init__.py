"""Training: the loop (one epoch, validation, fit), the paper's update rule and schedule, and
checkpoints."""
