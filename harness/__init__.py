"""AlexNet (Krizhevsky, Sutskever, Hinton 2012) reproducibility harness.

Layout (docs/architecture.md): data/ and prepare/ (datasets), model/, train/, evaluate/,
analysis/ (scoring, ensembles, statistics, claims), report/, stages/ (one module per DVC
stage); config, runtime, accel, io, tracking and cli at the top.
"""
