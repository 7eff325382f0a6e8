"""Stage `prepare`: write the prepared dataset and log it."""

from __future__ import annotations

import time
from pathlib import Path

from harness import config as C
from harness import tracking
from harness.prepare import writer
from harness.stages import StageContext, params_for


def run_prepare(ctx: StageContext, *, out: Path, workers: int, work: Path | None = None,
                partial: Path | None = None) -> dict:
    """Prepare into a staging folder, then move the finished dataset into `out`, the DVC output.

    The staging folder holds the finished shards and their resume records while the preparation
    runs: a killed run resumes from it, and `out` need not persist (DVC's run-cache works).
    Relative `work` (extracted archives) and `partial` (staging) folders are resolved against the
    repository, so a queued `dvc exp run` in a throw-away copy resumes and reuses them too.
    `partial` None: a `<out>.partial` folder beside the output.
    """
    extracted = _at_root(ctx, work) if work is not None else None
    staging = (_at_root(ctx, partial) / writer.staging_name(ctx.cfg.data) if partial is not None
               else out.with_name(out.name + ".partial"))
    with tracking.child_run(ctx.uri, ctx.experiment_id, ctx.parent_id, "prepare",
                            params_for(ctx.cfg, "data"), {**ctx.base_tags, "stage": "prepare"}) as run_id:
        start = time.perf_counter()
        manifest = writer.prepare(ctx.cfg.data, staging, workers, extracted if extracted is not None else out.parent / "extracted")
        writer.publish(staging, out)
        tracking.log_metrics(ctx.uri, run_id, {"prepare_time_s": time.perf_counter() - start,
                                               **{f"n_{k}": v for k, v in manifest["counts"].items()},
                                               "n_skipped": len(manifest["skipped"])})
        tracking.set_tags(ctx.uri, run_id, {"data_digest": manifest["digest"]})
        tracking.set_tags(ctx.uri, ctx.parent_id, {"data_digest": manifest["digest"]})
        tracking.log_stage_files(ctx.uri, run_id, C.to_dict(ctx.cfg), out / "manifest.json")
    return manifest


def _at_root(ctx: StageContext, folder: Path) -> Path:
    return folder if folder.is_absolute() else ctx.root / folder
