"""DVC stage `evaluate@<seed>`: centre-crop and 10-patch probabilities [N, C] and top-k errors."""

import _env  # noqa: F401 (first: outside the project's environment, says what to activate)
import sys
from pathlib import Path

from harness.stages import open_stage, torchrun_if_asked
from harness.stages.evaluate import run_evaluate
from harness.stages.script import main_guard, parser


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--seed", type=int, required=True)
    p.add_argument("--arm", default=None, help="ablation arm (params ablations.arms); default: the baseline")
    p.add_argument("--data", type=Path, required=True, help="prepared-data folder")
    p.add_argument("--model", type=Path, required=True, help="model folder of this seed")
    p.add_argument("--out", type=Path, required=True, help="predictions folder of this seed")
    p.add_argument("--metrics", type=Path, required=True, help="metrics JSON to write")
    args = p.parse_args()
    stage = f"evaluate@{args.seed}" if args.arm is None else f"evaluate_ablation@{args.arm}-{args.seed}"
    if args.arm in ("finetune", "pretrain"):
        stage = f"evaluate_{args.arm}@fall2011-{args.seed}"
    torchrun_if_asked(args.params, __file__, sys.argv[1:], stage, arm=args.arm, one_node=True)  # train.nproc_per_node > 1
    ctx = open_stage(args.params, stage, arm=args.arm)
    r = run_evaluate(ctx, seed=args.seed, data_dir=args.data, model_dir=args.model, out_dir=args.out,
                     metrics_path=args.metrics)
    for name, m in r["protocols"].items():
        print(f"{args.arm + ' ' if args.arm else ''}seed {args.seed} {name}: top-1 {m['top1_error']:.2f}%, top-5 {m['top5_error']:.2f}%")


if __name__ == "__main__":
    main_guard(main)
