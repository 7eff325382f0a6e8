"""Stage `prepare`: write the prepared dataset and log it."""

from __future__ import annotations

import time
from pathlib import Path

from harness import tracking
from harness.prepare import writer
from harness.stages import StageContext, params_for


def run_prepare(ctx: StageContext, *, out: Path, workers: int, work: Path | None = None) -> dict:
    with tracking.child_run(ctx.uri, ctx.experiment_id, ctx.parent_id, "prepare",
                            params_for(ctx.cfg, "data"), {**ctx.base_tags, "stage": "prepare"}) as run_id:
        start = time.perf_counter()
        manifest = writer.prepare(ctx.cfg.data, out, workers, work)
        tracking.log_metrics(ctx.uri, run_id, {"prepare_time_s": time.perf_counter() - start,
                                               **{f"n_{k}": v for k, v in manifest["counts"].items()},
                                               "n_skipped": len(manifest["skipped"])})
        tracking.set_tags(ctx.uri, run_id, {"data_digest": manifest["digest"]})
        tracking.set_tags(ctx.uri, ctx.parent_id, {"data_digest": manifest["digest"]})
    return manifest
