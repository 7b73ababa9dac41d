"""Reference numbers from torchvision for the TypeScript EfficientNet parity test.

Usage: .venv/bin/python tools/torchvision_reference.py OUT_DIR

Writes into OUT_DIR (never commit it: the two .pth files are 31 MB and 21 MB):
  b1_random.pth, b0_random.pth   torch.save(model.state_dict()) of efficientnet_b1()/_b0(), random
                                 init with fixed torch seeds (the files the TS reader must load)
  *.bin                          raw little-endian float32 (or uint8 for images), row-major
  manifest.json                  shapes, layouts and file names of everything above

Layouts: model inputs and preprocessed images are NHWC (what the TS model takes); logits [N, 1000].
All arrays are float32 unless the manifest says uint8.
"""

import json
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torchvision_compat import import_torchvision  # noqa: E402

SEED = 20240611


def save_array(out_dir, name, array):
    array = np.ascontiguousarray(array)
    assert array.dtype in (np.float32, np.uint8), array.dtype
    array.tofile(os.path.join(out_dir, name))
    return {"file": name, "shape": list(array.shape), "dtype": str(array.dtype)}


def keep_every_draw(model):
    """Stochastic depth and dropout draw random masks in training mode. For a comparable training
    forward we fix every draw to "keep": the survivors are still scaled by 1 / (1 - p), exactly as
    when torch's bernoulli draws all come out 1. The TS side gets the same masks from an Rng whose
    next() is always 0 (src/model/ops/layers.ts dropMask keeps an entry when next() < 1 - p)."""
    from torchvision.ops import StochasticDepth

    def all_kept(p):
        return lambda x: x if p == 0.0 else x / (1.0 - p)

    for module in model.modules():
        if isinstance(module, (StochasticDepth, torch.nn.Dropout)):
            module.forward = all_kept(module.p)


def make_it_look_trained(model, generator):
    """A freshly initialized torchvision EfficientNet in eval mode (BatchNorm = identity) shrinks
    its activations block after block: its logits are ~1e-14, and any absolute tolerance would pass.
    So we give every BatchNorm a non-trivial affine part and running statistics equal to the
    statistics of its actual eval-mode input on a random 240x240 batch, as a trained model roughly
    has: activations and logits are then of order 1 and every key's values matter. One forward
    pass does it: a pre-hook sets each BatchNorm's statistics just before it runs."""

    def calibrate(bn, inputs):
        x = inputs[0]
        bn.running_mean.copy_(x.mean(dim=(0, 2, 3)))
        bn.running_var.copy_(x.var(dim=(0, 2, 3)))

    batch_norms = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    with torch.no_grad():
        for bn in batch_norms:
            bn.weight.uniform_(0.5, 1.5, generator=generator)
            bn.bias.normal_(0.0, 0.2, generator=generator)
        hooks = [bn.register_forward_pre_hook(calibrate) for bn in batch_norms]
        model.eval()
        model(torch.randn(2, 3, 240, 240, generator=generator))
        for hook in hooks:
            hook.remove()


def model_outputs(tv, out_dir, manifest):
    from torchvision.models import efficientnet_b0, efficientnet_b1

    torch.manual_seed(SEED)
    b1 = efficientnet_b1()
    make_it_look_trained(b1, torch.Generator().manual_seed(SEED + 4))
    torch.save(b1.state_dict(), os.path.join(out_dir, "b1_random.pth"))
    torch.manual_seed(SEED + 1)
    torch.save(efficientnet_b0().state_dict(), os.path.join(out_dir, "b0_random.pth"))
    manifest["checkpoints"] = {"b1": "b1_random.pth", "b0": "b0_random.pth"}

    gen = torch.Generator().manual_seed(SEED + 2)
    b1.eval()
    cases = {}
    for name, shape in {"240": (2, 3, 240, 240), "32": (4, 3, 32, 32)}.items():
        x = torch.randn(shape, generator=gen)
        with torch.no_grad():
            logits = b1(x)
        cases[name] = {
            "input": save_array(out_dir, f"input_{name}.bin", x.permute(0, 2, 3, 1).numpy()),
            "logits": save_array(out_dir, f"logits_{name}.bin", logits.numpy()),
        }
    manifest["eval_cases"] = cases

    # One training-mode forward (momentum 0.1, unbiased running_var) with every stochastic-depth
    # and dropout draw "keep"; its logits too, as a check of the training path. A 4x64x64 batch:
    # at 32x32 the last layers see 1x1 maps, i.e. 4 values per channel, and batch statistics of 4
    # values amplify float32 rounding so much that torch's own float32 result is 1e-3 away from its
    # float64 result (3e-6 at 64x64).
    trained = efficientnet_b1()
    trained.load_state_dict(b1.state_dict())
    keep_every_draw(trained)
    trained.train()
    x = torch.randn((4, 3, 64, 64), generator=gen)
    with torch.no_grad():
        train_logits = trained(x)
    stats, values, offset = [], [], 0
    for key, tensor in trained.state_dict().items():
        if key.endswith(".running_mean") or key.endswith(".running_var"):
            flat = tensor.numpy().astype(np.float32).ravel()
            stats.append({"key": key, "offset": offset, "length": int(flat.size)})
            values.append(flat)
            offset += flat.size
    manifest["bn_after_train_forward"] = {
        "input": save_array(out_dir, "input_train_64.bin", x.permute(0, 2, 3, 1).numpy()),
        "momentum": 0.1,
        "values": save_array(out_dir, "bn_after_train.bin", np.concatenate(values)),
        "entries": stats,
        "logits": save_array(out_dir, "logits_train_64.bin", train_logits.numpy()),
    }


def preprocess_outputs(tv, out_dir, manifest):
    """IMAGENET1K_V2.transforms() on random CIFAR-sized images, through both input paths: PIL
    (what the reference's torchvision CIFAR10 dataset hands it) and a uint8 CHW tensor."""
    from PIL import Image
    from torchvision.models import EfficientNet_B1_Weights

    transform = EfficientNet_B1_Weights.IMAGENET1K_V2.transforms()
    rng = np.random.default_rng(SEED + 3)
    chw = rng.integers(0, 256, size=(3, 3, 32, 32), dtype=np.uint8)  # 3 images, CIFAR record layout
    pil_out, tensor_out = [], []
    for image in chw:
        pil = Image.fromarray(np.transpose(image, (1, 2, 0)), mode="RGB")
        pil_out.append(transform(pil).permute(1, 2, 0).numpy())
        tensor_out.append(transform(torch.from_numpy(image)).permute(1, 2, 0).numpy())
    pil_out, tensor_out = np.stack(pil_out), np.stack(tensor_out)
    manifest["preprocess"] = {
        "transform": repr(transform),
        "images_chw_uint8": save_array(out_dir, "preprocess_images.bin", chw),
        "pil": save_array(out_dir, "preprocess_pil.bin", pil_out),
        "tensor": save_array(out_dir, "preprocess_tensor.bin", tensor_out),
        "max_abs_diff_pil_vs_tensor": float(np.abs(pil_out - tensor_out).max()),
    }


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    out_dir = sys.argv[1]
    os.makedirs(out_dir, exist_ok=True)
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    tv = import_torchvision()
    manifest = {"seed": SEED, "torch": torch.__version__, "torchvision": tv.__version__, "layout": "NHWC"}
    model_outputs(tv, out_dir, manifest)
    preprocess_outputs(tv, out_dir, manifest)
    with open(os.path.join(out_dir, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1)


if __name__ == "__main__":
    main()
