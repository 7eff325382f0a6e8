"""DVC stage `validate`: load and check the whole params.yaml before any other stage runs.

Every other stage depends on this stage's output, so DVC runs it first: an unknown key or a bad
value stops `dvc repro` / `dvc exp run` here, before DVC removes any stage's outputs to rerun it.
The output holds a fixed text, not a digest of the params: its hash never changes, so a params
change reruns only the stages that list the changed params, as before.
"""

import _env  # noqa: F401 (first: outside the project's environment, says what to activate)
import argparse
import sys
from pathlib import Path

from harness import config as C

STAMP = "params.yaml is valid (harness/config.py); the stages that use a changed param rerun\n"


def main() -> None:
    # not harness.stages.script: that package imports torch, seconds this check need not wait
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--params", type=Path, default=Path("params.yaml"), help="params file (default: %(default)s)")
    p.add_argument("--out", type=Path, required=True, help="stamp file to write (fixed contents)")
    args = p.parse_args()
    try:
        cfg = C.load_config(args.params)
    except C.ConfigError as exc:  # names the key; one line and exit 2, as every stage script does
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    for note in C.notes(cfg):
        print(note)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(STAMP)
    print(f"{args.params}: valid")


if __name__ == "__main__":
    main()
