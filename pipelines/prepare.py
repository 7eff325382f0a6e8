"""DVC stage `prepare`: write the dataset named by data.* as shards + index + mean/PCA + manifest."""

import _env  # noqa: F401 (first: outside the project's environment, says what to activate)
import os
from pathlib import Path

from harness.stages import open_stage
from harness.stages.prepare import run_prepare
from harness.stages.script import main_guard, parser


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--out", type=Path, required=True, help="prepared-data folder")
    p.add_argument("--work", type=Path, default=None,
                   help="folder for extracted archives (default: <out>/../extracted); kept between runs")
    p.add_argument("--partial", type=Path, default=None,
                   help="folder for a preparation in progress (resume after a kill); relative: to the "
                        "repository root (default: <out>.partial)")
    p.add_argument("--workers", type=int, default=0,
                   help="processes for decoding/rendering (0: one per core); the bytes do not depend on it")
    p.add_argument("--pretrain", action="store_true", help="prepare pretrain.data (paper 6's Fall 2011), not data.*")
    args = p.parse_args()
    ctx = open_stage(args.params, "prepare_pretrain@fall2011" if args.pretrain else "prepare",
                     arm="pretrain" if args.pretrain else None)
    m = run_prepare(ctx, out=args.out, workers=args.workers or os.cpu_count() or 1, work=args.work, partial=args.partial)
    print(f"prepared {m['counts']} images of {len(m['classes'])} classes into {args.out} "
          f"({m['encoding']} shards, {len(m['skipped'])} input file(s) skipped)")


if __name__ == "__main__":
    main_guard(main)
