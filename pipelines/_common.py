"""Shared wiring for the stage scripts: argument parsing and user-facing errors."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from harness.errors import UserError


def parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--params", type=Path, default=Path("params.yaml"), help="params file (default: params.yaml)")
    return p


def main_guard(fn) -> None:
    """Run fn(); a UserError prints one clear line and exits 2, with no traceback."""
    try:
        fn()
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("interrupted; finished outputs are kept", file=sys.stderr)
        sys.exit(130)
