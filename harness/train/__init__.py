"""Training: the loop (one epoch, validation, fit) and its state, the paper's update rule and
schedule, checkpoints, and what the train stage and the pilot build alike before the first step
(setup)."""
