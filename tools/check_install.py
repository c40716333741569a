"""Install su_notes as a user would, into a clean virtual environment, and import every public name.

The venv gets only what `pip install .` declares (plus the pinned CPU torch wheel first, so that
pip does not pull a CUDA build). Then every module listed in `su_notes._modidx` is imported, every
name in each module's `__all__` is looked up, and the one function that needs an optional-looking
dependency (`load_digits_tensors`, scikit-learn) is called. Exits non-zero, naming what failed, if a
declared dependency is missing or a name does not import.

Usage: python3 tools/check_install.py [--torch torch==2.13.0] [--keep]
"""

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SKIP = {
    '.git',
    '.venv',
    '_docs',
    '_proc',
    '_build',
    '.cache',
    'build',
    'dist',
    '.pytest_cache',
    '.hypothesis',
    '__pycache__',
    '.ipynb_checkpoints',
    'tests',
    'benchmarks',
    '.gl',
    '.whl',
}

PROBE = r'''
import importlib, json, sys
import su_notes
from su_notes._modidx import d
# su_notes.optim re-exports its modules
packages = sorted({'.'.join(k.split('.')[:2]) for k in d['syms']})
names = 0
for m in ['su_notes'] + packages + sorted(d['syms']):
    mod = importlib.import_module(m)
    for n in getattr(mod, '__all__', []):
        getattr(mod, n); names += 1
from su_notes.core import load_digits_tensors
X, y = load_digits_tensors()
assert X.shape == (1797, 64), X.shape
import importlib.metadata as md
print(json.dumps({'modules': len(d['syms']), 'names': names,
                  'installed': sorted(x.metadata['Name'].lower() for x in md.distributions())}))
'''


def run(cmd, **kw):
    print('+', ' '.join(str(c) if len(str(c)) < 80 else '<probe script>' for c in cmd), flush=True)
    return subprocess.run(cmd, check=True, **kw)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        '--torch', default='torch==2.13.0', help='torch requirement installed first (the CPU wheel)'
    )
    ap.add_argument('--keep', action='store_true', help='keep the temporary venv and copy')
    args = ap.parse_args()
    t0 = time.time()
    tmp = Path(tempfile.mkdtemp(prefix='su_notes_install_'))
    try:
        src = tmp / 'src'  # a copy: building in the checkout would leave build/ and egg-info behind
        shutil.copytree(ROOT, src, ignore=lambda d, names: [n for n in names if n in SKIP])
        env_dir = tmp / 'venv'
        venv.EnvBuilder(with_pip=True, clear=True).create(env_dir)
        py = env_dir / 'bin' / 'python'
        pip = [py, '-m', 'pip', 'install', '-q', '--disable-pip-version-check']
        run(pip + [args.torch])
        run(pip + [str(src)])
        out = run([py, '-c', PROBE], capture_output=True, text=True, cwd=tmp)
        res = __import__('json').loads(out.stdout.strip().splitlines()[-1])
        for dev_only in ('nbdev', 'fastcore', 'pytest', 'hypothesis', 'scipy-stubs'):
            if dev_only in res['installed']:
                sys.exit(
                    f'check_install: {dev_only} got installed by `pip install .`: '
                    'it is not a runtime dependency'
                )
        print(
            f"check_install: clean venv, `pip install .`: {res['modules']} modules and "
            f"{res['names']} public names import; load_digits_tensors works "
            f"({time.time() - t0:.0f}s)"
        )
    except subprocess.CalledProcessError as e:
        sys.exit(f'check_install: failed: {e}\n{getattr(e, "stderr", "") or ""}')
    finally:
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            print('kept', tmp)


if __name__ == '__main__':
    main()
