"""Training reference from torch autograd for test/training_parity.test.ts.

Usage: .venv/bin/python tools/training_reference.py OUT_DIR [--lr LR]

EfficientNet-B1 (torchvision's random init, fixed torch seed) + nn.Linear(1000, 1), training mode,
every stochastic-depth and dropout draw "keep" (survivors scaled by 1 / (1 - p), exactly as when
all of torch's bernoulli draws come out 1), BCE-with-logits (mean) on fixed labels, three steps of
torch.optim.SGD(lr, momentum=MOMENTUM) on three fixed 8x3x32x32 batches (lr: --lr, default the
experiment's 1e-4). The same run in float64 gives the reference the TS side is measured against:
at 32x32 the last stages see 1x1 maps, so BatchNorm's batch statistics come from 8 values and
amplify float32 rounding; float64 shows what the exact numbers are, and the float32 run shows how
far torch's own float32 lands from them (written too, for the diagnostics).

Writes into OUT_DIR (never commit it: ~60 MB):
  b1.pth, head.pth        torch.save of the backbone's and the head's initial state_dicts (float32)
  input_<s>.bin           batch of step s (0, 1, 2), NHWC float32; labels in manifest.json
  <run>_grads.bin         step 0's gradient of every parameter            (run: f64, f32)
  <run>_after.bin         every parameter and BatchNorm running_mean/var after the 3 steps
  manifest.json           per key: offset, length, TF.js shape; losses of each step per run
Arrays are float32, little-endian, in the TF.js variables' layouts: conv weights OIHW -> HWIO (a
depthwise [C, 1, k, k] has the memory order of [k, k, C, 1] that way), linear [out, in] -> [in, out].
"""

import json
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torchvision_compat import import_torchvision  # noqa: E402

SEED = 20261202
LR = 1e-4
MOMENTUM = 0.9
BATCH = 8
SIZE = 32
STEPS = 3
LABELS = [1.0, 0.0, 0.0, 1.0, 0.0, 1.0, 0.0, 0.0]


def keep_every_draw(model):
    """Every StochasticDepth and Dropout keeps everything, scaled as torch scales survivors: the
    mask of ones is divided by the survival rate (noise.div_(survival_rate)) and multiplied in."""
    from torchvision.ops import StochasticDepth

    def all_kept(p):
        def forward(x):
            if p == 0.0:
                return x
            noise = torch.ones((), dtype=x.dtype).div_(1.0 - p)
            return x * noise

        return forward

    for module in model.modules():
        if isinstance(module, (StochasticDepth, torch.nn.Dropout)):
            module.forward = all_kept(module.p)


def tf_layout(t):
    t = t.detach()
    if t.dim() == 4:
        return t.permute(2, 3, 1, 0)
    if t.dim() == 2:
        return t.t()
    return t


class Writer:
    def __init__(self, out_dir, name):
        self.path = os.path.join(out_dir, name)
        self.entries, self.chunks, self.offset = {}, [], 0

    def add(self, key, tensor):
        flat = np.ascontiguousarray(tf_layout(tensor).to(torch.float32).numpy()).ravel()
        self.entries[key] = {"offset": self.offset, "length": int(flat.size)}
        self.chunks.append(flat)
        self.offset += flat.size

    def close(self):
        np.concatenate(self.chunks).astype("<f4").tofile(self.path)
        return {"file": os.path.basename(self.path), "entries": self.entries}


def run(tv, backbone_state, head_state, batches, labels, dtype, lr, out_dir, name):
    model = tv.models.efficientnet_b1()
    model.load_state_dict(backbone_state)
    head = torch.nn.Linear(1000, 1)
    head.load_state_dict(head_state)
    model.to(dtype)
    head.to(dtype)
    keep_every_draw(model)
    model.train()
    named = [(k, p) for k, p in model.named_parameters()] + [(f"head.{k}", p) for k, p in head.named_parameters()]
    optimizer = torch.optim.SGD([p for _, p in named], lr=lr, momentum=MOMENTUM)
    loss_fn = torch.nn.BCEWithLogitsLoss()
    y = torch.tensor(labels, dtype=dtype)
    losses = []
    grads = Writer(out_dir, f"{name}_grads.bin")
    for step, x in enumerate(batches):
        optimizer.zero_grad()
        loss = loss_fn(head(model(x.to(dtype))).squeeze(1), y)
        loss.backward()
        losses.append(float(loss.detach()))
        if step == 0:
            for key, p in named:
                grads.add(key, p.grad)
        optimizer.step()
    after = Writer(out_dir, f"{name}_after.bin")
    for key, p in named:
        after.add(key, p)
    for key, t in model.state_dict().items():
        if key.endswith(".running_mean") or key.endswith(".running_var"):
            after.add(key, t)
    return {"losses": losses, "grads": grads.close(), "after": after.close()}


def main(out_dir, lr):
    tv = import_torchvision()
    torch.manual_seed(SEED)
    backbone = tv.models.efficientnet_b1()
    head = torch.nn.Linear(1000, 1)
    torch.save(backbone.state_dict(), os.path.join(out_dir, "b1.pth"))
    torch.save(head.state_dict(), os.path.join(out_dir, "head.pth"))
    gen = torch.Generator().manual_seed(SEED + 1)
    batches = [torch.randn((BATCH, 3, SIZE, SIZE), generator=gen) for _ in range(STEPS)]
    inputs = []
    for s, x in enumerate(batches):
        file = f"input_{s}.bin"
        np.ascontiguousarray(x.permute(0, 2, 3, 1).numpy()).astype("<f4").tofile(os.path.join(out_dir, file))
        inputs.append({"file": file, "shape": [BATCH, SIZE, SIZE, 3]})
    manifest = {
        "lr": lr, "momentum": MOMENTUM, "labels": LABELS, "inputs": inputs,
        "checkpoints": {"backbone": "b1.pth", "head": "head.pth"},
        "torch": torch.__version__, "torchvision": tv.__version__,
    }
    backbone_state, head_state = backbone.state_dict(), head.state_dict()
    for name, dtype in [("f64", torch.float64), ("f32", torch.float32)]:
        manifest[name] = run(tv, backbone_state, head_state, batches, LABELS, dtype, lr, out_dir, name)
    with open(os.path.join(out_dir, "manifest.json"), "w") as f:
        json.dump(manifest, f)


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir")
    parser.add_argument("--lr", type=float, default=LR)
    args = parser.parse_args()
    main(args.out_dir, args.lr)
