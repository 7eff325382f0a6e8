"""Imported first by every stage script: outside the project's environment, say what to activate.

Without it, `python pipelines/train.py` from a shell where .venv is not active ends in a
ModuleNotFoundError traceback for harness or torch. Nothing here can change a stage's outputs
(it only looks for the packages), so it is not a DVC dep of the stages.
"""

import importlib.util
import sys

NEEDED = ("yaml", "numpy", "torch", "harness")  # harness: the project, installed by `make install`

missing = next((name for name in NEEDED if importlib.util.find_spec(name) is None), None)
if missing is not None:
    print(f"error: {sys.executable} cannot import {missing}: the project's environment is not active. "
          "Run `make install` then `source .venv/bin/activate`, or use `make repro`", file=sys.stderr)
    sys.exit(2)
