"""DVC stage `ensemble_finetune@fall2011`: ILSVRC-only and pre-trained CNNs averaged together (paper 6)."""

import _env  # noqa: F401 (first: outside the project's environment, says what to activate)
from pathlib import Path

from harness.stages import open_stage
from harness.stages.ensemble_finetune import run_ensemble_finetune
from harness.stages.script import main_guard, parser


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--data", type=Path, required=True, help="prepared ILSVRC-2012 folder (labels)")
    p.add_argument("--pretrain-data", type=Path, required=True, help="prepared Fall-2011 folder (its manifest)")
    p.add_argument("--predictions", type=Path, required=True, help="seed-N/ predictions of the ILSVRC-only CNNs")
    p.add_argument("--finetuned", type=Path, required=True, help="seed-N/ predictions of the fine-tuned CNNs")
    p.add_argument("--evaluations", type=Path, required=True, help="seed-N.json of the fine-tuned CNNs")
    p.add_argument("--pretrain-evaluations", type=Path,
                   help="seed-N.json of the pre-trained CNNs on their own held-out data (the Fall-2009 claims)")
    p.add_argument("--metrics", type=Path, required=True, help="metrics JSON to write")
    args = p.parse_args()
    ctx = open_stage(args.params, "ensemble_finetune@fall2011")
    r = run_ensemble_finetune(ctx, data_dir=args.data, pretrain_data=args.pretrain_data, pred_dir=args.predictions,
                              finetune_dir=args.finetuned, evaluations=args.evaluations, metrics_path=args.metrics,
                              pretrain_evaluations=args.pretrain_evaluations)
    for name, mixes in r["protocols"].items():
        full = mixes[f"{len(r['base_seeds'])}+{len(r['pretrained_seeds'])}"]
        print(f"{name}: {full['k']} CNNs ({len(r['pretrained_seeds'])} pre-trained): "
              f"top-1 {full['top1_error'][0]:.2f}%, top-5 {full['top5_error'][0]:.2f}%")


if __name__ == "__main__":
    main_guard(main)
