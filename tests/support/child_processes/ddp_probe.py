"""Two training steps of a tiny model under torch DDP (gloo on the CPU), launched exactly as the
backends launch the stage runner: checks that ``gpus: 2`` really starts two cooperating processes.

Each rank trains on different data; after DDP's gradient all-reduce the weights must be identical
on every rank and different from the start. Each rank writes rank-<i>.json into --out.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--spec", type=Path)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--cache-dir", type=Path)
    args = parser.parse_args()

    import torch
    from accelerate import Accelerator

    accelerator = Accelerator()  # reads ACCELERATE_USE_CPU and the torchrun variables
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 1)
    start = [p.detach().clone() for p in model.parameters()]
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    model, optimizer = accelerator.prepare(model, optimizer)
    generator = torch.Generator().manual_seed(100 + accelerator.process_index)  # different data per rank
    for _ in range(2):
        x, y = torch.randn(8, 4, generator=generator), torch.randn(8, 1, generator=generator)
        loss = torch.nn.functional.mse_loss(model(x), y)
        accelerator.backward(loss)
        optimizer.step()
        optimizer.zero_grad()
    weights = [p.detach().flatten().tolist() for p in accelerator.unwrap_model(model).parameters()]
    changed = any(not torch.equal(a, b.detach()) for a, b in zip(start, accelerator.unwrap_model(model).parameters(), strict=True))
    state = accelerator.state
    report = {
        "rank": accelerator.process_index, "world": accelerator.num_processes,
        "backend": getattr(state, "backend", None), "distributed_type": str(state.distributed_type),
        "device": str(accelerator.device), "weights": weights, "changed": changed,
        "cuda_visible": os.environ.get("CUDA_VISIBLE_DEVICES"),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"rank-{accelerator.process_index}.json").write_text(json.dumps(report))
    accelerator.wait_for_everyone()


if __name__ == "__main__":
    main()
