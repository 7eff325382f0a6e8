"""DVC stage `prepare`: write the dataset named by data.* as shards + index + mean/PCA + manifest."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import main_guard, parser  # noqa: E402

from harness.stages import open_stage  # noqa: E402
from harness.stages.prepare import run_prepare  # noqa: E402


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--out", type=Path, required=True, help="prepared-data folder")
    p.add_argument("--workers", type=int, default=2, help="processes for rendering/decoding")
    args = p.parse_args()
    ctx = open_stage(args.params, "prepare")
    m = run_prepare(ctx, args.out, args.workers)
    print(f"prepared {m['counts']} images of {len(m['classes'])} classes into {args.out}")


if __name__ == "__main__":
    main_guard(main)
