"""DVC stage `ensemble`: softmax averages over the seeds' models; error for every ensemble size."""

import _env  # noqa: F401 (first: outside the project's environment, says what to activate)
from pathlib import Path

from harness.stages import open_stage
from harness.stages.ensemble import run_ensemble
from harness.stages.script import main_guard, parser


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--data", type=Path, required=True, help="prepared-data folder (labels)")
    p.add_argument("--predictions", type=Path, required=True, help="folder with seed-N/ predictions")
    p.add_argument("--metrics", type=Path, required=True, help="metrics JSON to write")
    args = p.parse_args()
    ctx = open_stage(args.params, "ensemble")
    r = run_ensemble(ctx, data_dir=args.data, pred_dir=args.predictions, metrics_path=args.metrics)
    for name, proto in r["protocols"].items():
        for row in proto["sizes"]:
            print(f"{name} k={row['k']}: top-1 {row['top1_error_mean']:.2f}%  top-5 {row['top5_error_mean']:.2f}%")


if __name__ == "__main__":
    main_guard(main)
