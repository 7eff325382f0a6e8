"""DVC stage `list_data`: list what `prepare` (and `prepare_pretrain`) will read, names, sizes and
mtimes, into small files those stages depend on. Runs on every `dvc repro` (docs/data.md)."""

import _env  # noqa: F401 (first: outside the project's environment, says what to activate)
from pathlib import Path

from harness.config import load_config
from harness.prepare.listing import write_listing
from harness.stages.script import main_guard, parser


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--out", type=Path, required=True, help="listing of data.* (prepare depends on it)")
    p.add_argument("--pretrain-out", type=Path, required=True,
                   help="listing of pretrain.data (prepare_pretrain depends on it; header only while "
                        "pretrain.enabled is [])")
    args = p.parse_args()
    cfg = load_config(args.params)
    n = write_listing(cfg.data, args.out)
    pretrain = cfg.pretrain.data if cfg.pretrain.enabled else None  # off: the header alone
    m = write_listing(pretrain, args.pretrain_out)
    print(f"listed {n} input file(s) of data.{cfg.data.source} into {args.out}"
          + (f", {m} of pretrain.data into {args.pretrain_out}" if pretrain else ""))


if __name__ == "__main__":
    main_guard(main)
