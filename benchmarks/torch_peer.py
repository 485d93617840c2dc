"""The batched PyTorch peer of benchmarks/throughput.py, runnable in an interpreter of its own.

torch is not a project dependency (its Linux wheels pull several GB of CUDA libraries), so
throughput.py runs this script with ``--torch_python=PATH`` (any Python with torch and numpy,
e.g. a venv with the CPU wheel) and reads one JSON line back. Needs only torch and numpy:

    python benchmarks/torch_peer.py --data=spiral.npz --widths=3,3,3 --population=4096 --steps=50

The loop is what a PyTorch user would write to train P models at once: ``baddbmm`` through
the layers, per-model random minibatches of 128 (``randint``, one gather), BCE with logits,
``torch.optim.SGD`` with momentum 0.9 and weight decay 5e-4. Prints the median model-steps/s
of ``--repeats`` timed loops of ``--steps`` steps after a 2-step warm-up.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import time

import numpy as np


def rate(x: np.ndarray, y: np.ndarray, widths: list[int], p: int, steps: int, repeats: int) -> float:
    import torch
    torch.manual_seed(0)
    xt, yt = torch.from_numpy(x.astype(np.float32)), torch.from_numpy(y.astype(np.float32))
    dims = [xt.shape[1], *widths, 1]
    ws = [(torch.randn(p, dims[i], dims[i + 1]) / math.sqrt(dims[i])).requires_grad_() for i in range(len(dims) - 1)]
    bs = [torch.zeros(p, 1, dims[i + 1]).requires_grad_() for i in range(len(dims) - 1)]
    opt = torch.optim.SGD(ws + bs, lr=0.05, momentum=0.9, weight_decay=5e-4)
    lossf = torch.nn.BCEWithLogitsLoss()

    def run(n: int) -> None:
        for _ in range(n):
            idx = torch.randint(0, len(xt), (p, 128))
            h = xt[idx]
            for i in range(len(ws)):
                h = torch.baddbmm(bs[i], h, ws[i])
                if i < len(ws) - 1:
                    h = torch.relu(h)
            opt.zero_grad()
            lossf(h[..., 0], yt[idx]).backward()
            opt.step()

    run(2)
    rates = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        run(steps)
        rates.append(p * steps / (time.perf_counter() - t0))
    return float(np.median(rates))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True, help=".npz with arrays x (N, I) and y (N)")
    ap.add_argument("--widths", required=True, help="hidden widths, e.g. 3,3,3")
    ap.add_argument("--population", type=int, required=True)
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--repeats", type=int, default=3)
    a = ap.parse_args()
    import torch
    torch.set_num_threads(os.cpu_count() or 1)
    with np.load(a.data) as f:
        x, y = f["x"], f["y"]
    widths = [int(v) for v in a.widths.split(",")]
    print(json.dumps({"torch_bmm": rate(x, y, widths, a.population, a.steps, a.repeats), "torch": torch.__version__,
                      "threads": torch.get_num_threads()}))


if __name__ == "__main__":
    main()
