"""DVC stage `train@<seed>`: train one seed of the paper's AlexNet and save its weights."""

import _env  # noqa: F401 (first: outside the project's environment, says what to activate)
import sys
from pathlib import Path

from harness.stages import open_stage, torchrun_if_asked
from harness.stages.script import main_guard, parser
from harness.stages.train import TrainOutputs, run_train


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--seed", type=int, required=True)
    p.add_argument("--arm", default=None, help="ablation arm (params ablations.arms); default: the baseline")
    p.add_argument("--data", type=Path, required=True, help="prepared-data folder")
    p.add_argument("--out", type=Path, required=True, help="model folder (weights, checkpoints)")
    p.add_argument("--metrics", type=Path, required=True, help="metrics JSON to write")
    p.add_argument("--plots", type=Path, required=True, help="per-epoch CSV to write")
    p.add_argument("--steps", type=Path, default=None, help="CSV of the training error every 20 steps to write")
    p.add_argument("--work", type=Path, default=None,
                   help="folder for resume checkpoints, kept between runs (relative: to the repository root; "
                        "default: <out>.work)")
    p.add_argument("--kernels", type=Path, default=None, help="conv1 kernels .npy to write (the report's Figure 3)")
    p.add_argument("--init", type=Path, default=None, help="pre-trained model folder to fine-tune (--arm finetune)")
    p.add_argument("--init-metrics", type=Path, default=None, help="its train metrics JSON (its MLflow run)")
    args = p.parse_args()
    stage = f"train@{args.seed}" if args.arm is None else f"train_ablation@{args.arm}-{args.seed}"
    if args.arm in ("pretrain", "finetune"):
        stage = f"{args.arm}@fall2011-{args.seed}"
    torchrun_if_asked(args.params, __file__, sys.argv[1:], stage, arm=args.arm)  # train.nproc_per_node > 1
    ctx = open_stage(args.params, stage, arm=args.arm)
    outputs = TrainOutputs(args.out, args.metrics, args.plots, steps=args.steps, kernels=args.kernels)
    r = run_train(ctx, seed=args.seed, data_dir=args.data, outputs=outputs, work=args.work,
                  init_from=args.init, init_metrics=args.init_metrics)
    print(f"{args.arm + ' ' if args.arm else ''}seed {args.seed}: val top-1 {r['final_val_top1_error']:.2f}%, "
          f"top-5 {r['final_val_top5_error']:.2f}% (MLflow run {r['mlflow_run_id']})")


if __name__ == "__main__":
    main_guard(main)
