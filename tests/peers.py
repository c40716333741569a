"""Import a peer library's submodule without running its packages' `__init__`.

LibMTL and lightly import torchvision in their top-level `__init__`; torchvision has no build for this project's
CPU torch wheel. The modules the tests compare against (LibMTL's weighting methods, lightly's loss and heads)
need only torch, so the tests load them directly. The peers are installed with `--no-deps` (see the Makefile)."""
import importlib, importlib.util, sys, types


def load_submodule(name: str):
    "`load_submodule('LibMTL.weighting.MGDA')`: the module, its parent packages registered as bare namespaces."
    parts = name.split('.')
    for i in range(1, len(parts)):
        pkg = '.'.join(parts[:i])
        if pkg in sys.modules: continue
        spec = importlib.util.find_spec(parts[0]) if i == 1 else None
        if i == 1 and spec is None: raise ModuleNotFoundError(f'peer {parts[0]!r} is not installed (make install)')
        parent = sys.modules[pkg.rsplit('.', 1)[0]] if i > 1 else None
        path = list(spec.submodule_search_locations) if i == 1 else [f'{parent.__path__[0]}/{parts[i - 1]}']
        mod = types.ModuleType(pkg); mod.__path__ = path; mod.__package__ = pkg
        sys.modules[pkg] = mod
        if parent is not None: setattr(parent, parts[i - 1], mod)
    return importlib.import_module(name)
