"""Import torchvision 0.28 next to torch 2.13.0+cpu.

torchvision 0.28's compiled ops do not match torch 2.13, so `import torchvision` fails in
`torch.library.register_fake("torchvision::nms")` ("operator torchvision::nms does not exist").
Only the detection ops are affected; the model and transform code is pure Python. We wrap
register_fake so that the call, and the decorator it returns, swallow exactly that error.
"""

import torch


def _tolerant_register_fake():
    original = torch.library.register_fake

    def is_missing_operator(err: Exception) -> bool:
        return "does not exist" in str(err) and "torchvision::" in str(err)

    def register_fake(*args, **kwargs):
        try:
            decorator = original(*args, **kwargs)
        except RuntimeError as err:
            if not is_missing_operator(err):
                raise
            return lambda fn: fn
        if not callable(decorator):
            return decorator

        def tolerant(fn):
            try:
                return decorator(fn)
            except RuntimeError as err:
                if not is_missing_operator(err):
                    raise
                return fn

        return tolerant

    torch.library.register_fake = register_fake


def import_torchvision():
    """Returns the torchvision module, imported with the workaround if needed."""
    try:
        import torchvision  # noqa: F401
    except RuntimeError as err:
        if "torchvision::" not in str(err):
            raise
        import sys

        for name in [m for m in sys.modules if m == "torchvision" or m.startswith("torchvision.")]:
            del sys.modules[name]
        _tolerant_register_fake()
        import torchvision  # noqa: F401
    import torchvision

    return torchvision
