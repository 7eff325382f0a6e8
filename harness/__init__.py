"""AlexNet (Krizhevsky, Sutskever, Hinton 2012) reproducibility harness."""

__version__ = "0.1.0"
