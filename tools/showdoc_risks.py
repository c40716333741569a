"""Fail when a notebook has a cell that nbdev's `exec_show_docs` would re-run in a fresh shell although it
holds more than imports (`make check`). Such a cell breaks the site build with a NameError whenever it uses a
name an earlier plain cell defined; the fix is to give the imports a cell of their own (nbdev FAQ).
`tools/build_docs.py` warns about the same cells before it executes the notebooks; this fails in seconds."""

import sys
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / 'tools'))
warnings.simplefilter('ignore')
import build_docs  # noqa: E402


def main() -> int:
    bad = {}
    for p in sorted((ROOT / 'nbs').rglob('*.ipynb')):
        if any(part.startswith(('_', '.')) for part in p.relative_to(ROOT / 'nbs').parts):
            continue
        risks = build_docs.showdoc_rerun_risks(p)
        if risks:
            bad[p.relative_to(ROOT)] = risks
    for p, risks in bad.items():
        print(
            f'{p}: imports mixed with other code (nbdev re-runs these cells alone to render show_doc; '
            'give the imports a cell of their own):\n' + '\n'.join(f'    {r}' for r in risks)
        )
    if not bad:
        print('check: no cell mixes imports with code that show_doc rendering would re-run')
    return 1 if bad else 0


if __name__ == '__main__':
    sys.exit(main())
