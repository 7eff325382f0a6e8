"""One torchrun worker of tests/unit/test_distributed.py: joins the job through harness.runtime
and records what it saw (devices, backend, collectives, a DDP step) in OUT/rank-<r>.json.

  python -m torch.distributed.run --standalone --nproc-per-node=N tests/dist_worker.py OUT DEVICES [BACKEND]

DEVICES is train.devices as a comma list (cpu or cpu,cpu); BACKEND overrides runtime.backend_for.
"""

import copy
import json
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

from harness import runtime
from harness.config import ModelConfig
from harness.model import build_model


def main(out: Path, devices: tuple[str, ...], backend: str | None) -> None:
    torch.set_num_threads(1)
    d = runtime.init_distributed(devices, backend=backend)
    from torch.distributed.distributed_c10d import _get_object_coll_device
    rec = {"rank": d.rank, "world": d.world, "local_rank": d.local_rank, "devices": list(d.devices),
           "backend": d.backend, "object_collective_device": _get_object_coll_device()}
    # float64 on the CPU: 1 + 1e-12 (r + 1) keeps its 1e-12 part only in double precision
    rec["sums"] = runtime.all_reduce_sum([1.0 + 1e-12 * (d.rank + 1), float(d.rank)], d)
    torch.manual_seed(100 + d.rank)
    mine = runtime.rng_states(d)
    got = runtime.all_gather({"rank": d.rank, "rng": mine, "partial": {"seen": 10 * d.rank}}, d)
    rec["gathered_ranks"] = [g["rank"] for g in got]
    rec["gathered_partials"] = [g["partial"]["seen"] for g in got]
    rec["own_rng_roundtrip"] = bool(torch.equal(got[d.rank]["rng"]["cpu"], mine["cpu"]))
    rec["rngs_differ"] = len({bytes(g["rng"]["cpu"].numpy()) for g in got}) == d.world
    rec["grad_max_diff"], rec["grad_max"] = ddp_step(d)
    runtime.barrier(d)
    (out / f"rank-{d.rank}.json").write_text(json.dumps(rec))
    runtime.shutdown(d)


def ddp_step(d: runtime.Dist) -> tuple[float, float]:
    """One backward pass through wrap_ddp against the mean of the ranks' own gradients."""
    cfg = ModelConfig(width=0.125, input_size=64, init="kaiming", input_scale=1 / 64, dropout=0.0)
    torch.manual_seed(0)  # the same initial weights on every rank, as in training
    model = build_model(cfg, 4, d.devices)
    plain = copy.deepcopy(model)
    g = torch.Generator().manual_seed(d.rank)  # each rank its own batch
    x, y = torch.randn(3, 3, 64, 64, generator=g), torch.randint(0, 4, (3,), generator=g)
    F.cross_entropy(plain(x), y).backward()
    local = [p.grad.detach().clone() for p in plain.parameters()]
    every = runtime.all_gather(local, d)
    mean = [torch.stack([r[i] for r in every]).mean(0) for i in range(len(local))]
    ddp = runtime.wrap_ddp(model, d)  # kept alive: its reducer averages during backward
    F.cross_entropy(ddp(x), y).backward()
    diff = max(float((p.grad - m).abs().max()) for p, m in zip(model.parameters(), mean))
    return diff, max(float(m.abs().max()) for m in mean)


if __name__ == "__main__":
    main(Path(sys.argv[1]), tuple(sys.argv[2].split(",")), sys.argv[3] if len(sys.argv) > 3 else None)
