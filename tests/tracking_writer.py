"""One of several processes logging at once to the same MLflow store, as parallel seeds do
(tests/reliability/test_concurrent_tracking.py): opens the experiment and the shared parent run
through harness.tracking, then logs a child run's params, dataset inputs, tags, a step series and
per-epoch metrics in many small calls, starting at the same moment as the others.

  python tests/tracking_writer.py ROOT SEED START_AT STEPS EPOCHS
"""

import sys
import time
from pathlib import Path

from harness import tracking


def main(root: Path, seed: int, start_at: float, steps: int, epochs: int) -> None:
    uri = tracking.resolve_uri(None, None, root)
    exp = tracking.ensure_experiment(uri, "concurrency-test", root)
    time.sleep(max(0.0, start_at - time.time()))  # every writer leaves the gate together
    parent = tracking.parent_run(uri, exp, "same-pipeline", {"role": "pipeline"}, root)
    params = {f"p{i}": i * seed for i in range(30)}
    manifest = {"source": "synthetic", "digest": "d" * 40, "image_size": 72, "counts": {"train": 10, "val": 4},
                "classes": ["a", "b"]}  # the same data for every seed, as in a real run
    with tracking.child_run(uri, exp, parent, f"train-seed{seed}", params, {"seed": seed}) as run:
        tracking.log_dataset(uri, run, manifest, "train", "training")
        tracking.log_dataset(uri, run, manifest, "val", "validation")
        for e in range(1, epochs + 1):
            per = steps // epochs
            # small batches, as the train loop's every-20-steps flushes
            for s0 in range((e - 1) * per, e * per, 10):
                tracking.log_series(uri, run, "step_loss", [(s, seed + s / 1000) for s in range(s0, s0 + 10)])
            tracking.log_metrics(uri, run, {"val_top1_error": 50.0 - e, "train_loss": 1.0 / e}, step=e)
            tracking.set_tags(uri, run, {f"epoch{e}": "done"})
    print(run)


if __name__ == "__main__":
    main(Path(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]))
