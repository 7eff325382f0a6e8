"""DVC stage `report`: reports/report.md and a self-contained reports/report.html."""

import _env  # noqa: F401 (first: outside the project's environment, says what to activate)
from pathlib import Path

from harness.stages import open_stage
from harness.stages.report import run_report
from harness.stages.script import main_guard, parser


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--data", type=Path, required=True, help="prepared-data folder (manifest)")
    p.add_argument("--metrics", type=Path, required=True, help="reports/metrics folder")
    p.add_argument("--plots", type=Path, required=True, help="reports/plots folder")
    p.add_argument("--md", type=Path, required=True)
    p.add_argument("--html", type=Path, required=True)
    p.add_argument("--figures", type=Path, required=True, help="folder for the PNG figures")
    p.add_argument("--curves", type=Path, required=True, help="CSV of all seeds' per-epoch curves (DVC plots)")
    p.add_argument("--benchmarks", type=Path, default=None, help="reports/benchmarks.json (shown when it exists)")
    p.add_argument("--reliability", type=Path, default=None, help="reports/reliability.json (`make reliability`)")
    p.add_argument("--cifar10-costs", type=Path, default=None,
                   help="reports/cifar10_costs.json (python -m benchmarks.cifar10)")
    p.add_argument("--kernels", type=Path, default=None, help="folder of the conv1 kernels per seed (Figure 3)")
    p.add_argument("--pilot", type=Path, default=None, help="reports/pilot.json (`harness pilot`)")
    p.add_argument("--gpu", type=Path, default=None,
                   help="reports/gpu.json (benchmarks/gpu_check.py on a GPU machine; shown when it exists)")
    args = p.parse_args()
    ctx = open_stage(args.params, "report")
    out = run_report(ctx, data_dir=args.data, metrics_dir=args.metrics, plots_dir=args.plots, out_md=args.md,
                     out_html=args.html, figures_dir=args.figures, all_seeds_csv=args.curves,
                     benchmarks=args.benchmarks, reliability=args.reliability, kernels=args.kernels,
                     pilot=args.pilot, cifar10_costs=args.cifar10_costs, gpu=args.gpu)
    print(f"report written: {out} (open it in a browser; it needs no network)")


if __name__ == "__main__":
    main_guard(main)
