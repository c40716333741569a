"""Import a peer library's submodule without running its packages' `__init__`.

LibMTL and lightly import torchvision in their top-level `__init__`; torchvision has no build for this project's
CPU torch wheel. The modules the tests compare against (LibMTL's weighting methods, lightly's loss and heads)
need only torch, so the tests load them directly. The peers are installed with `--no-deps` (see the Makefile)."""

import contextlib
import importlib
import importlib.util
import sys
import types


def load_submodule(name: str):
    "`load_submodule('LibMTL.weighting.MGDA')`: the module, its parent packages registered as bare namespaces."
    parts = name.split('.')
    for i in range(1, len(parts)):
        pkg = '.'.join(parts[:i])
        if pkg in sys.modules:
            continue
        spec = importlib.util.find_spec(parts[0]) if i == 1 else None
        if i == 1 and spec is None:
            raise ModuleNotFoundError(f'peer {parts[0]!r} is not installed (make install)')
        parent = sys.modules[pkg.rsplit('.', 1)[0]] if i > 1 else None
        path = list(spec.submodule_search_locations) if i == 1 else [f'{parent.__path__[0]}/{parts[i - 1]}']
        mod = types.ModuleType(pkg)
        mod.__path__ = path
        mod.__package__ = pkg
        sys.modules[pkg] = mod
        if parent is not None:
            setattr(parent, parts[i - 1], mod)
    return importlib.import_module(name)


@contextlib.contextmanager
def placeholder_torchvision():
    """A stand-in `torchvision.ops` (one empty `StochasticDepth` class) registered only inside the block.

    `lightly.models.modules.heads` imports `lightly.models.utils`, whose first lines import
    `torchvision.ops.StochasticDepth`; the SimSiam heads never use it. A real torchvision, when importable, is used."""
    import torch.nn as nn

    try:
        import torchvision  # noqa: F401

        if not getattr(torchvision, "_su_notes_placeholder", False):
            yield
            return
    except Exception:
        pass  # not installed, or a build that does not match this torch
    saved = {k: sys.modules[k] for k in ("torchvision", "torchvision.ops") if k in sys.modules}
    tv, ops = types.ModuleType("torchvision"), types.ModuleType("torchvision.ops")
    ops.StochasticDepth = type("StochasticDepth", (nn.Module,), {})
    tv.ops, tv._su_notes_placeholder = ops, True
    sys.modules.update({"torchvision": tv, "torchvision.ops": ops})
    try:
        yield
    finally:
        for k in ("torchvision", "torchvision.ops"):
            sys.modules.pop(k, None)
        sys.modules.update(saved)


def lightly_heads():
    "lightly's `lightly.models.modules.heads` (SimSiam heads: torch.nn only), behind `placeholder_torchvision`."
    if "lightly.models.modules.heads" in sys.modules:
        return sys.modules["lightly.models.modules.heads"]
    with placeholder_torchvision():
        return load_submodule("lightly.models.modules.heads")
