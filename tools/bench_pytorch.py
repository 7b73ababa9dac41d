"""PyTorch side of `make bench-compare`: torchvision's efficientnet_b1 + Linear(1000, 1), the
reference's optimizer (SGD lr 1e-4, momentum 0.9) and loss (BCE), on random inputs, on the CPU.

Prints one JSON line: {"engine": "pytorch", "train_img_s", "eval_img_s", "peak_rss_gb", ...}.
Run in its own process so that peak RSS is this engine's alone.
    .venv/bin/python tools/bench_pytorch.py --size 32 --batch 64 --eval-batch 256 --seconds 20
"""

import argparse
import json
import os
import resource
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torchvision_compat import import_torchvision  # noqa: E402

import torch  # noqa: E402


def cpu_ticks():
    """The machine's CPU time counters (the "cpu" line of /proc/stat), or None where there is none."""
    try:
        with open("/proc/stat") as f:
            line = f.readline()
    except OSError:
        return None
    return [int(v) for v in line.split()[1:]] if line.startswith("cpu ") else None


def steal_share(before, after):
    """Steal's share of all CPU time between two readings (bench/host_steal.ts reads it the same way)."""
    if before is None or after is None or len(before) < 8 or len(after) < 8:
        return None
    d = [b - a for a, b in zip(before[:8], after[:8])]
    return d[7] / sum(d) if sum(d) > 0 else None


def timed(step, seconds, min_steps):
    """Steps after one warm-up, for at least `seconds`: (steps, seconds, the host's steal share)."""
    step()  # warm-up
    ticks = cpu_ticks()
    t0 = time.perf_counter()
    steps = 0
    while steps < min_steps or time.perf_counter() - t0 < seconds:
        step()
        steps += 1
    return steps, time.perf_counter() - t0, steal_share(ticks, cpu_ticks())


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, default=32)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--eval-batch", type=int, default=256)
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("--threads", type=int, default=0, help="torch.set_num_threads (0: torch's default)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    tv = import_torchvision()
    torch.manual_seed(0)
    model = torch.nn.Sequential(tv.models.efficientnet_b1(), torch.nn.Linear(1000, 1))
    opt = torch.optim.SGD(model.parameters(), lr=1e-4, momentum=0.9)
    loss_fn = torch.nn.BCEWithLogitsLoss()
    x = torch.randn(args.batch, 3, args.size, args.size)
    y = (torch.rand(args.batch, 1) < 0.1).float()
    xe = torch.randn(args.eval_batch, 3, args.size, args.size)

    def train_step():
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()
        loss.item()

    model.train()
    steps, secs, train_steal = timed(train_step, args.seconds, 2)
    train_rate = steps * args.batch / secs
    train_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 / 1024

    model.eval()

    def eval_step():
        with torch.no_grad():
            model(xe).sum().item()

    esteps, esecs, eval_steal = timed(eval_step, args.seconds / 2, 1)
    print(json.dumps({
        "engine": "pytorch", "version": torch.__version__, "threads": torch.get_num_threads(),
        "size": args.size, "batch": args.batch, "eval_batch": args.eval_batch,
        "params": sum(p.numel() for p in model.parameters()),
        "train_img_s": train_rate, "train_steps": steps, "train_peak_rss_gb": train_peak, "train_steal": train_steal,
        "eval_img_s": esteps * args.eval_batch / esecs, "eval_steal": eval_steal,
        "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 / 1024,
    }))


if __name__ == "__main__":
    main()
