"""DVC stage `train@<seed>`: train one seed of the paper's AlexNet and save its weights."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import main_guard, parser  # noqa: E402

from harness.stages import open_stage  # noqa: E402
from harness.stages.train import run_train  # noqa: E402


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--seed", type=int, required=True)
    p.add_argument("--arm", default=None, help="ablation arm (params ablations.arms); default: the baseline")
    p.add_argument("--data", type=Path, required=True, help="prepared-data folder")
    p.add_argument("--out", type=Path, required=True, help="model folder (weights, checkpoints)")
    p.add_argument("--metrics", type=Path, required=True, help="metrics JSON to write")
    p.add_argument("--plots", type=Path, required=True, help="per-epoch CSV to write")
    args = p.parse_args()
    stage = f"train@{args.seed}" if args.arm is None else f"train_ablation@{args.arm}-{args.seed}"
    ctx = open_stage(args.params, stage, arm=args.arm)
    r = run_train(ctx, args.seed, args.data, args.out, args.metrics, args.plots)
    print(f"{args.arm + ' ' if args.arm else ''}seed {args.seed}: val top-1 {r['final_val_top1_error']:.2f}%, "
          f"top-5 {r['final_val_top5_error']:.2f}% (MLflow run {r['mlflow_run_id']})")


if __name__ == "__main__":
    main_guard(main)
