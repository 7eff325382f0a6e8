"""DVC stage `compare`: every claim of the paper and the reference runs vs this run's seeds."""

import _env  # noqa: F401 (first: outside the project's environment, says what to activate)
from pathlib import Path

from harness.stages import open_stage
from harness.stages.compare import run_compare
from harness.stages.script import main_guard, parser


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--data", type=Path, required=True, help="prepared-data folder (labels)")
    p.add_argument("--evaluations", type=Path, required=True, help="folder with seed-N.json")
    p.add_argument("--predictions", type=Path, required=True, help="folder with seed-N/ predictions")
    p.add_argument("--ensemble", type=Path, required=True, help="ensemble metrics JSON")
    p.add_argument("--train-plots", type=Path, help="folder with seed-N.csv training curves (and seed-N.steps.csv)")
    p.add_argument("--train-metrics", type=Path, help="folder with seed-N.json training metrics")
    p.add_argument("--ablations", type=Path, help="folder with <arm>/evaluate/seed-N.json")
    p.add_argument("--ablation-plots", type=Path, help="folder with <arm>/train/seed-N.csv")
    p.add_argument("--finetune", type=Path, help="folder with ensemble.json of the pre-trained CNNs (pretrain.enabled)")
    p.add_argument("--out", type=Path, required=True, help="compare.json to write")
    p.add_argument("--summary", type=Path, help="summary.json to write: the headline figures (the DVC metrics)")
    args = p.parse_args()
    ctx = open_stage(args.params, "compare")
    r = run_compare(ctx, data_dir=args.data, eval_dir=args.evaluations, pred_dir=args.predictions,
                    ensemble_path=args.ensemble, out_path=args.out, train_plots=args.train_plots,
                    ablations_dir=args.ablations, ablation_plots=args.ablation_plots, train_dir=args.train_metrics,
                    summary_path=args.summary, finetune_dir=args.finetune)
    v, ref = r["counts"]["verdicts"], r["reference"]
    print(", ".join(f"{n} {label}" for label, n in v.items()) + f" ({r['counts']['claims_total']} claims)")
    if ref.get("tested"):
        for metric, m in ref["metrics"].items():
            print(f"reference ({ref['profile']}), {metric}: {m['verdict']} "
                  f"(ours {m['ours']['mean']:.2f}, reference {m['reference']['mean']:.2f})")
    else:
        print(f"reference: not compared ({ref['reason']})")
    for arm, a in r["ablation_results"].items():
        for metric, e in next(iter(a["protocols"].values()), {}).items():
            print(f"ablation {arm}, {metric}: arm - baseline {e['diff']:+.2f} pp ({e['method']}, p {e['p_value']})")


if __name__ == "__main__":
    main_guard(main)
