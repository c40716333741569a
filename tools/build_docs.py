#!/usr/bin/env python
"""Build the documentation site into `_docs/` and `README.md` from `nbs/` (`make docs`, `make readme`).

Notebooks are committed without outputs, so every build first EXECUTES them, then lets nbdev process them, then
hands them to a documentation generator:

1. Execute. Each notebook found by nbdev's `nbglob` (scratch `_*.ipynb` excluded) runs in a kernel on this venv's
   interpreter, cwd = its folder, with the cells nbdev would not run skipped: the `nbdev_export()` cell,
   `#| eval: false`, `#| cuda` without a GPU (a visible note replaces the output) and, with `--skip-slow`,
   `#| slow`. Executed copies go to `_build/nbs/`. A failing cell stops the build with the notebook, the cell and
   the traceback.
2. nbdev. `quarto` on PATH: nbdev's own path, `nbdev_docs`. Otherwise (offline) the processing `nbdev_docs` applies,
   `nbdev.serve_drv` with `FilterDefaults` (front matter, `show_doc`, hide/echo, doc links), writes `_proc/`.
3. MyST sources (offline path). Each processed page of nbdev's sidebar becomes a MyST-NB source in
   `_build/site_src/`, named by its quarto URL (`optim/10_adax.ipynb` -> `optim/adax.ipynb`, so pages keep their
   URLs): front matter -> title block; quarto cell options -> MyST-NB tags (`echo: false` -> `remove-input`, ...);
   `show_doc` output (`output: asis`) -> Markdown cells, so API entries are headings in the page table of contents;
   pandoc link attributes dropped; nbdev's absolute doc links and `.ipynb`/`.md` links -> relative source links,
   which Sphinx checks. `record_claim` outputs become claim boxes ("Claim" for kind post, "Check" for kind check)
   and the generated Claims page (post claims by verdict; checks in their own "Verified against" tables); each
   post page's title block ends with the provenance of its records (devices, torch/Python versions, dates); the
   index gets the topic toctrees (the sidebar) and a Claims column in its catalog (post claims only).
4. Sphinx. `sphinx-build -W --keep-going` with `docs/conf.py` (MyST-NB, pydata-sphinx-theme, sphinx-copybutton,
   local MathJax 3): a warning or a broken internal link fails the build. The machine-readable ledger,
   `claims.json` (`claims_ledger`), is served next to the Claims page; `--claims-summary` prints its counts.
5. README. `nbdev_readme` with quarto; offline, the processed (not executed, hence deterministic) `nbs/index.ipynb`.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import posixpath
import re
import shutil
import subprocess
import sys
import time
import traceback
from pathlib import Path, PurePosixPath

# jsonschema (imported by nbformat) imports `rfc3987_syntax` when it is installed, which compiles ~40 lark grammars:
# ~9 s of CPU in every process that reads a notebook. nbformat's schema does not use the IRI formats it validates.
sys.modules.setdefault('rfc3987_syntax', None)

ROOT = Path(__file__).resolve().parent.parent
BUILD = ROOT / '_build'
SITE_SRC = BUILD / 'site_src'
CONF_DIR = ROOT / 'docs'
# nbdev_sidebar's default file_re plus `.md`, so top-level markdown pages such as nbs/benchmarks.md are listed too.
DOC_FILE_RE = r'\.(?:ipynb|qmd|md|html)$'
EXEC_VERSION = '1'  # bump to invalidate `--cached` executions when the execution step changes
CLAIM_MIME = 'application/vnd.su-notes.claim+json'  # = su_notes.core.CLAIM_MIME (the build does not import torch)
RESOURCE_EXTS = ('.png', '.jpg', '.jpeg', '.gif', '.svg', '.webp')


# ----------------------------------------------------------------------------------------------------------
# Small pure helpers (tested in tests/test_site.py without building anything)
# ----------------------------------------------------------------------------------------------------------


def page_url(rel, fm: dict | None = None) -> str:
    """Site URL (relative to the site root) of the page built from `rel`, a path relative to nbs/.
    Notebooks use nbdev's mapping (number prefix dropped, lower case); `.md`/`.qmd` keep their stem, as
    quarto does; an `output-file` front-matter key wins, as in quarto."""
    p = PurePosixPath(str(rel).replace(os.sep, '/'))
    if fm and fm.get('output-file'):
        return str(p.with_name(str(fm['output-file'])))
    if p.suffix == '.ipynb':
        from nbdev.doclinks import _nbpath2html

        return _nbpath2html(Path(p)).as_posix()
    if p.suffix in ('.md', '.qmd'):
        return str(p.with_suffix('.html'))
    return str(p)


def _first_arg(d: dict, k: str) -> str:
    v = d.get(k) or ['']
    return str(v[0]).lower()


def cell_skip_reason(cell, skip_slow: bool = False, has_cuda: bool = True) -> str | None:
    """Why the docs build does not execute `cell` (None: execute it). Uses nbdev's own directive parser,
    so `#|cuda`, `#| cuda` and `# | cuda` are read exactly as nbdev_test reads them."""
    from nbdev.process import extract_directives

    if cell.get('cell_type') != 'code':
        return None
    src = cell.get('source') or ''
    if isinstance(src, list):
        src = ''.join(src)
    if 'nbdev_export' + '()' in src:
        return 'nbdev_export'
    from fastcore.basics import AttrDict

    d = extract_directives(AttrDict(source=src), remove=False)
    if _first_arg(d, 'eval:') == 'false':
        return 'eval: false'
    if 'cuda' in d and not has_cuda:
        return 'cuda'
    if 'slow' in d and skip_slow:
        return 'slow'
    return None


_re_opt = re.compile(r'^\s*#\|\s*([\w-]+)\s*:\s*(.*?)\s*$')


def split_cell_options(source: str) -> tuple[dict, str]:
    """Split the leading quarto cell options (`#| key: value`) off `source`: (options, remaining code).
    Other leading `#|` lines (nbdev flags such as `#| hide`) are dropped too."""
    import yaml

    opts, lines = {}, source.splitlines(keepends=True)
    i = 0
    while i < len(lines) and lines[i].lstrip().startswith('#|'):
        m = _re_opt.match(lines[i])
        if m:
            try:
                v = yaml.safe_load(m.group(2)) if m.group(2) else None
            except Exception:
                v = m.group(2)
            opts[m.group(1)] = v
        i += 1
    return opts, ''.join(lines[i:])


def pandoc_id(text: str) -> str:
    """Pandoc's `auto_identifiers` (what quarto gives a heading): lower case, keep alphanumerics and
    `_-.`, spaces to hyphens, drop everything before the first letter; nbdev's doc links rely on it
    (`core.html#gaussianmixture.log_prob`)."""
    s = ''.join(c for c in text.strip().lower() if c.isalnum() or c in '_-.' or c.isspace())
    s = re.sub(r'\s+', '-', s)
    i = next((k for k, c in enumerate(s) if c.isalpha()), len(s))
    return s[i:] or 'section'


_re_attr_link = re.compile(r'(?<!!)\[([^\]\n]*)\]\(([^)\s]+)\)\{([^}\n]*)\}')
_re_attr = re.compile(r'''([\w-]+)=("[^"]*"|'[^']*'|\S+)|([.#][\w-]+)''')
_re_div = re.compile(r'^(:{3,})\s*(\{[^}]*\}|[\w-]+)?\s*$')
_re_heading_attrs = re.compile(r'^(#{1,6}\s.*?)\s+\{[^}]*\}\s*$', flags=re.MULTILINE)


def derive_sidebar(path) -> list:
    """The sidebar exactly as `nbdev_sidebar` derives it from the notebook tree at `path` (index first, then
    files, then one section per topic folder), with `.md` pages included. Writes `path/sidebar.yml` (as
    nbdev does; quarto reads it) and returns its `contents` list."""
    import yaml
    from nbdev.quarto import nbdev_sidebar

    path = Path(path)
    nbdev_sidebar.__wrapped__(path=path, force=True, file_glob=None, file_re=DOC_FILE_RE)
    return yaml.safe_load((path / 'sidebar.yml').read_text())['website']['sidebar']['contents']


def sidebar_files(contents) -> list[str]:
    "Every file in a sidebar `contents` list, in sidebar order (section index pages included)."
    out = []
    for item in contents:
        if isinstance(item, str):
            out.append(item)
        else:
            if item.get('href'):
                out.append(item['href'])
            out += sidebar_files(item.get('contents', []))
    return out


def notebook_frontmatter(nb) -> dict:
    "Front matter of a notebook processed by nbdev (its first raw `---` cell), else {}."
    from nbdev.frontmatter import _fm2dict

    for c in nb.cells:
        if c.cell_type == 'raw':
            fm = _fm2dict(c.source)
            if fm:
                return fm
    return {}


# ----------------------------------------------------------------------------------------------------------
# 1. Execution (runs in worker processes)
# ----------------------------------------------------------------------------------------------------------


def _note_output(reason: str):
    import nbformat

    msgs = {
        'cuda': (
            'This cell needs a GPU (<code>#| cuda</code>): it was not run when these pages were built '
            '(<code>torch.cuda.is_available()</code> was False there).',
            'This cell needs a GPU (#| cuda): it was not run when these pages were built.',
        ),
        'slow': (
            'This <code>#| slow</code> cell was skipped in this build (<code>--skip-slow</code>); '
            'run <code>make docs</code> for its output.',
            'This #| slow cell was skipped in this build (--skip-slow).',
        ),
    }
    if reason not in msgs:
        return None
    h, t = msgs[reason]
    return nbformat.v4.new_output(
        'display_data',
        data={
            'text/html': f'<div class="cell-note cell-note-{reason}" role="note">{h}</div>',
            'text/plain': t,
        },
    )


def _exec_hash(src: Path, skip_slow: bool, has_cuda: bool) -> str:
    h = hashlib.sha256(f'{EXEC_VERSION}|{skip_slow}|{has_cuda}|{sys.executable}'.encode())
    h.update(src.read_bytes())
    return h.hexdigest()


def _make_client(nb, cwd: str, timeout: int, skips: dict):
    from jupyter_client.kernelspec import KernelSpec, KernelSpecManager
    from jupyter_client.manager import AsyncKernelManager
    from nbclient import NotebookClient

    class VenvKernelSpecs(KernelSpecManager):
        "Always the interpreter running this build (the venv), whatever kernelspecs are installed."

        def get_kernel_spec(self, kernel_name):
            return KernelSpec(
                argv=[sys.executable, '-m', 'ipykernel_launcher', '-f', '{connection_file}'],
                display_name=f'Python ({sys.executable})',
                language='python',
                name=kernel_name,
                resource_dir=str(ROOT),
            )

    import tempfile

    ipc_dir = tempfile.mkdtemp(prefix='su_docs_kernel_')

    class DocsClient(NotebookClient):
        def create_kernel_manager(self):
            # ipc transport: parallel workers cannot race for the same TCP port
            self.km = AsyncKernelManager(
                kernel_name='python3',
                kernel_spec_manager=VenvKernelSpecs(),
                transport='ipc',
                ip=str(Path(ipc_dir) / 'kernel'),
                config=self.config,
            )
            return self.km

        async def async_execute_cell(
            self, cell, cell_index, execution_count=None, store_history=True
        ):
            self.current_index = cell_index
            if cell.cell_type == 'code' and cell_index in skips:
                cell.outputs = [o for o in [_note_output(skips[cell_index])] if o]
                cell.execution_count = None
                return cell
            return await super().async_execute_cell(
                cell, cell_index, execution_count, store_history
            )

    client = DocsClient(
        nb,
        timeout=timeout,
        startup_timeout=180,
        kernel_name='python3',
        allow_errors=False,
        record_timing=False,
        resources={'metadata': {'path': cwd}},
    )
    client.ipc_dir = ipc_dir
    return client


def _cell_ref(nb, idx) -> str:
    if idx is None:
        return 'unknown cell'
    code_no = sum(1 for c in nb.cells[: idx + 1] if c.cell_type == 'code')
    src = nb.cells[idx].source
    head = '\n'.join('    ' + l for l in src.splitlines()[:8])
    more = '\n    ...' if len(src.splitlines()) > 8 else ''
    return f'cell {idx} (code cell #{code_no}):\n{head}{more}'


def kernel_env() -> dict:
    "The kernel's environment: progress bars on (SU_NOTES_PROGRESS unset), matplotlib figures as image/png."
    env = dict(os.environ)
    env.pop('SU_NOTES_PROGRESS', None)
    env['MPLBACKEND'] = 'module://matplotlib_inline.backend_inline'
    env.setdefault('PYDEVD_DISABLE_FILE_VALIDATION', '1')
    return env


def execute_notebook(
    src: Path, dst: Path, *, skip_slow=False, has_cuda=False, timeout=1800
) -> dict:
    """Execute `src` (cwd = its folder) and write the executed copy to `dst`. Returns a report dict;
    on failure `error` holds which cell failed and why."""
    import nbformat
    from nbconvert.preprocessors import CoalesceStreamsPreprocessor

    nb = nbformat.read(src, as_version=4)
    skips = {
        i: r
        for i, c in enumerate(nb.cells)
        if (r := cell_skip_reason(c, skip_slow=skip_slow, has_cuda=has_cuda))
    }
    for c in nb.cells:
        if c.cell_type == 'code':
            c.outputs, c.execution_count = [], None
    client = _make_client(nb, str(src.parent), timeout, skips)
    t0 = time.perf_counter()
    err = None
    try:
        client.execute(env=kernel_env())
    except Exception as e:
        idx = getattr(client, 'current_index', None)
        msg = re.sub(
            r'\x1b\[[0-9;]*[A-Za-z]', '', str(e)
        )  # the kernel's traceback is ANSI-coloured
        if (
            type(e).__name__ == 'CellExecutionError'
        ):  # its message already holds the cell source and traceback
            err = f"{_cell_ref(nb, idx).splitlines()[0].rstrip(':')}\n{msg}"
        else:
            err = f'{_cell_ref(nb, idx)}\n{type(e).__name__}: {msg}'
    secs = time.perf_counter() - t0
    shutil.rmtree(client.ipc_dir, ignore_errors=True)
    nb, _ = CoalesceStreamsPreprocessor().preprocess(nb, {})  # tqdm's \r updates -> the final bar
    dst.parent.mkdir(parents=True, exist_ok=True)
    if err:
        dst = dst.with_suffix('.failed.ipynb')
    nbformat.write(nb, dst)
    return dict(
        exec_s=secs,
        error=err,
        skipped=sorted(set(skips.values())),
        failed_copy=str(dst) if err else None,
    )


def run_job(job: dict) -> dict:
    "One notebook: execute (or reuse a `--cached` execution), stage it, then nbdev-process it (offline path)."
    os.chdir(ROOT)
    src, staged, cache = Path(job['src']), Path(job['staged']), Path(job['cache'])
    res = dict(rel=job['rel'], exec_s=0.0, proc_s=0.0, error=None, cached=False, skipped=[])
    try:
        h = _exec_hash(src, job['skip_slow'], job['has_cuda'])
        hfile = cache.with_suffix('.sha256')
        if job['use_cache'] and cache.exists() and hfile.exists() and hfile.read_text() == h:
            res['cached'] = True
        else:
            if hfile.exists():
                hfile.unlink()
            r = execute_notebook(
                src,
                cache,
                skip_slow=job['skip_slow'],
                has_cuda=job['has_cuda'],
                timeout=job['timeout'],
            )
            res.update(exec_s=r['exec_s'], skipped=r['skipped'])
            if r['error']:
                res['error'] = (
                    f"executing {job['rel']} failed at {r['error']}\n(partial output: {r['failed_copy']})"
                )
                return res
            hfile.write_text(h)
            cache.with_suffix('.failed.ipynb').unlink(missing_ok=True)
        staged.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(cache, staged)
        if job.get('proc'):
            t0 = time.perf_counter()
            import nbdev.serve_drv
            from nbdev.processors import FilterDefaults

            proc = Path(job['proc'])
            proc.parent.mkdir(parents=True, exist_ok=True)
            try:
                nbdev.serve_drv.main((staged, proc, FilterDefaults))
            except Exception as e:
                res['error'] = (
                    f"nbdev's docs processing of {job['rel']} failed: {e}\n"
                    f"{''.join(traceback.format_exception_only(e.__cause__)) if e.__cause__ else ''}"
                    "Note: nbdev's `exec_show_docs` re-runs, in a fresh shell, only the cells that "
                    "import, export or call show_doc. A cell that mixes an import with other code is "
                    "re-run there without the names earlier plain cells defined: put imports in a cell "
                    "of their own (nbdev FAQ). `nbdev_docs` with quarto fails the same way."
                )
            res['proc_s'] = time.perf_counter() - t0
    except Exception as e:
        res['error'] = f"{job['rel']}: {type(e).__name__}: {e}\n{traceback.format_exc()}"
    return res


def _cuda_available() -> bool:
    try:
        out = subprocess.run(
            [sys.executable, '-c', 'import torch; print(torch.cuda.is_available())'],
            capture_output=True,
            text=True,
            timeout=300,
        )
        return out.stdout.strip().endswith('True')
    except Exception:
        return False


def _needs_cuda_check(paths) -> bool:
    return any(
        re.search(r'^\s*#\s*\|\s*cuda\b', ''.join(c.get('source', '')), re.M)
        for p in paths
        for c in json.loads(Path(p).read_text(encoding='utf-8')).get('cells', [])
    )


def showdoc_rerun_risks(path) -> list[str]:
    """Cells that nbdev's `exec_show_docs` will re-run in a fresh shell although they hold more than imports
    (nbdev's own "Found cells containing imports and other code" test). They break the docs build whenever
    they use a name an earlier plain cell defined. Returns one line per cell."""
    import ast
    import warnings
    from execnb.nbio import read_nb
    from nbdev.process import NBProcessor
    from nbdev.processors import _ast_contains, _want_doc

    nb = NBProcessor(nb=read_nb(path)).nb
    if not any(_want_doc(c) for c in nb.cells):
        return []  # exec_show_docs only runs where there are exports
    out = []
    for i, c in enumerate(nb.cells):
        if c.cell_type != 'code' or not c.source or 'nbdev_export' + '()' in c.source:
            continue
        if c.directives_.keys() & {'export', 'exports', 'exporti', 'exec_doc'}:
            continue
        if _first_arg(c.directives_, 'eval:') == 'false':
            continue
        with warnings.catch_warnings():
            warnings.simplefilter('ignore')
            try:
                trees = c.parsed_()
            except Exception:
                continue
        if (
            trees
            and _ast_contains(trees, (ast.Import, ast.ImportFrom))
            and _ast_contains(trees, (ast.Expr, ast.Assign))
        ):
            first = next((l for l in c.source.splitlines() if not l.lstrip().startswith('#')), '')
            out.append(f'cell {i}: {first.strip()[:70]}')
    return out


def execute_all(
    notebooks: list[Path], nbs: Path, stage: Path, proc_dir: Path | None, args
) -> list[dict]:
    import concurrent.futures as cf
    import multiprocessing as mp

    has_cuda = _cuda_available() if _needs_cuda_check(notebooks) else False
    cache_dir = BUILD / 'exec'
    jobs = []
    for p in notebooks:
        rel = p.relative_to(nbs)
        cache = cache_dir / rel
        prev = 0.0
        tfile = cache.with_suffix('.seconds')
        if tfile.exists():
            try:
                prev = float(tfile.read_text())
            except ValueError:
                pass
        jobs.append(
            dict(
                src=str(p),
                rel=rel.as_posix(),
                staged=str(stage / rel),
                cache=str(cache),
                proc=str(proc_dir / rel) if proc_dir else None,
                skip_slow=args.skip_slow,
                has_cuda=has_cuda,
                timeout=args.timeout,
                use_cache=args.cached,
                prev=prev,
            )
        )
    jobs.sort(key=lambda j: -j['prev'])  # longest first (timings of the previous build)
    print(
        f'Executing {len(jobs)} notebooks with {args.jobs} worker(s) '
        f'(kernel: {sys.executable}; cuda: {has_cuda}; slow cells: {"skipped" if args.skip_slow else "run"})',
        flush=True,
    )
    for p in notebooks:  # warn before spending minutes executing
        risks = showdoc_rerun_risks(p)
        if risks:
            print(
                f'  warning: {p.relative_to(nbs)}: nbdev re-runs these cells (imports mixed with other code) '
                'in a fresh shell to render show_doc; they fail there if they use names from other cells; '
                'give the imports a cell of their own:\n' + '\n'.join(f'      {r}' for r in risks),
                flush=True,
            )
    results = []
    ctx = mp.get_context('spawn')
    with cf.ProcessPoolExecutor(
        max_workers=max(1, args.jobs), mp_context=ctx, max_tasks_per_child=1
    ) as ex:
        futs = {ex.submit(run_job, j): j for j in jobs}
        for f in cf.as_completed(futs):
            r = f.result()
            results.append(r)
            status = 'FAILED' if r['error'] else ('cached' if r['cached'] else 'ok')
            extra = f" (skipped: {', '.join(r['skipped'])})" if r['skipped'] else ''
            print(
                f"  {status:6s} {r['rel']:45s} execute {r['exec_s']:6.1f}s  nbdev {r['proc_s']:5.1f}s{extra}",
                flush=True,
            )
            if not r['error'] and not r['cached']:
                Path(futs[f]['cache']).with_suffix('.seconds').write_text(f"{r['exec_s']:.1f}")
    return results


# ----------------------------------------------------------------------------------------------------------
# 3. MyST sources for Sphinx (offline path)
# ----------------------------------------------------------------------------------------------------------

_re_link = re.compile(r'(?<!!)\[((?:[^\[\]\n]|\[[^\]\n]*\])*)\]\(([^()\s]+)\)(\{[^}\n]*\})?')
_re_heading_attrs = re.compile(r'^(#{1,6}\s.*?)\s+\{[^}]*\}\s*$', flags=re.MULTILINE)
_re_code_link = re.compile(r'\[(`[^`\n]+`)\]\([^()\s]+\)')
_re_heading = re.compile(r'^(#{1,6})\s+(.*?)\s*$')
_re_scheme = re.compile(r'^[a-zA-Z][\w+.-]*:|^#|^/')


def source_name(rel: str, fm: dict | None = None) -> str:
    "Name of the MyST source of the page built from `rel` (relative to nbs/): its quarto URL with the source suffix."
    url = PurePosixPath(page_url(rel, fm))
    return str(url.with_suffix('.ipynb' if rel.endswith('.ipynb') else '.md'))


def _split_fences(md: str):
    "Yield (is_code, text) runs of `md`, code fences (``` or ~~~) kept whole."
    out, buf, fence = [], [], None
    for line in md.split('\n'):
        m = re.match(r'^\s*(`{3,}|~{3,})', line)
        if fence is None and m:
            if buf:
                out.append((False, '\n'.join(buf)))
            buf, fence = [line], m.group(1)
        elif fence is not None and line.strip().startswith(fence):
            buf.append(line)
            out.append((True, '\n'.join(buf)))
            buf, fence = [], None
        else:
            buf.append(line)
    if buf:
        out.append((fence is not None, '\n'.join(buf)))
    return out


class LinkMap:
    "Rewrites the links of one page into links between MyST sources, which Sphinx resolves and checks."

    def __init__(self, src2doc: dict, site_url: str):
        self.src2doc = src2doc  # nbs-relative source -> source name
        self.url2doc = {page_url(s): d for s, d in src2doc.items()} | {
            str(PurePosixPath(d).with_suffix('.html')): d for d in src2doc.values()
        }
        self.site_url = site_url.rstrip('/')

    def target(self, href: str, rel: str) -> str:
        "`href` as written in the page from `rel` -> the relative source link (or `href` unchanged)."
        path, hsh, frag = href.partition('#')
        if self.site_url and href.startswith(self.site_url + '/'):
            doc = self.url2doc.get(path[len(self.site_url) + 1 :] or 'index.html')
        elif _re_scheme.match(href):
            return href
        else:
            tgt = posixpath.normpath(posixpath.join(posixpath.dirname(rel), path))
            doc = self.src2doc.get(tgt) or self.url2doc.get(
                posixpath.normpath(posixpath.join(posixpath.dirname(page_url(rel)), path))
            )
        if doc is None:
            return href  # unknown page: left for Sphinx to report
        here = posixpath.dirname(self.src2doc[rel])
        return posixpath.relpath(doc, here or '.') + hsh + frag

    def markdown(self, md: str, rel: str, showdoc: bool = False) -> str:
        "Rewrite links (outside code), drop pandoc attributes; in show_doc code blocks links become plain names."

        def link(m):
            attrs = m.group(3) or ''
            cls = '{.showdoc-source}' if 'float:right' in attrs.replace(' ', '') else ''
            return f'[{m.group(1)}]({self.target(m.group(2), rel)}){cls}'

        parts = []
        for is_code, text in _split_fences(md):
            if is_code:
                parts.append(_re_code_link.sub(r'\1', text) if showdoc else text)
            else:
                parts.append(_re_heading_attrs.sub(r'\1', _re_link.sub(link, text)))
        return '\n'.join(parts)


def title_block(fm: dict, provenance: str | None = None) -> str:
    """The page head from nbdev's front matter: title, summary, and for a post its source, original title, date,
    papers and (given) the provenance line of its ledger records."""
    if not fm.get('title'):
        return ''  # a page without front matter keeps its own heading
    lines = [f"# {fm['title']}", '']
    if fm.get('description'):
        lines += ['{.post-lead}', str(fm['description']), '']
    meta = []
    if fm.get('source'):
        meta.append(f"- **Post:** [{fm.get('original_title') or fm['source']}]({fm['source']})")
        by = ', '.join(str(fm[k]) for k in ('author', 'date') if fm.get(k))
        if by:
            meta.append(f'- **By:** {by}')
        follow = fm.get('follow-up') or fm.get(
            'follow_up'
        )  # a companion post the notebook also covers
        if follow:
            meta.append(f'- **Follow-up post:** [{follow}]({follow})')
    if fm.get('papers'):
        meta.append(f"- **Papers:** {fm['papers']}")
    if provenance:
        meta.append(f'- [{provenance}]{{.provenance}}')
    if meta:
        lines += [':::{container} post-meta', *meta, ':::', '']
    return '\n'.join(lines)


# ----------------------------------------------------------------------------------------------------------
# The claims ledger: records of `su_notes.core.record_claim` (JSON under CLAIM_MIME in the cell outputs) with keys
# claim, measured, verdict, kind ("post" | "check"), tolerance, seeds, values, provenance (device, torch, python,
# date). Records written before kinds existed have no kind: they were all counted as claims, i.e. "post".
# ----------------------------------------------------------------------------------------------------------

VERDICTS = ('holds', 'caveat', 'does not hold', 'untested')  # = su_notes.core.VERDICTS
CLAIM_KINDS = ('post', 'check')  # = su_notes.core.CLAIM_KINDS
VERDICT_MARKS = {'holds': '✓', 'caveat': '≈', 'does not hold': '✗', 'untested': '?'}


def record_kind(rec: dict) -> str:
    "The record's kind; records made before kinds existed count as post claims (as the Claims page counted them)."
    return rec.get('kind') or 'post'


def verdict_css(verdict: str) -> str:
    "The CSS suffix of a verdict (`does not hold` -> `does-not-hold`); an unknown verdict is an error."
    if verdict not in VERDICT_MARKS:
        raise ValueError(
            f'Invalid verdict in a claim record: {verdict!r} (expected one of {VERDICTS})'
        )
    return verdict.replace(' ', '-')


def seeds_text(seeds) -> str:
    "The seeds of a record, short: `0, 1, 2` or `40 seeds (0–39)`; '' for a deterministic run."
    seeds = list(seeds or [])
    if len(seeds) <= 4:
        return ', '.join(str(s) for s in seeds)
    span = (
        f' ({min(seeds)}–{max(seeds)})'
        if sorted(seeds) == list(range(min(seeds), max(seeds) + 1))
        else ''
    )
    return f'{len(seeds)} seeds{span}'


def claim_markdown(rec: dict) -> str:
    "A claim box (a post claim: 'Claim'; an implementation check: 'Check'), with the label the Claims page links to."
    v, kind = rec['verdict'], record_kind(rec)
    css = f"claim claim-{verdict_css(v)} claim-kind-{kind}"
    head = 'Claim' if kind == 'post' else 'Check'
    lines = [
        f"({rec['label']})=",
        f':::{{container}} {css}',
        f"**{VERDICT_MARKS[v]} {head} — {v}.** {rec['claim']}",
        '',
        f"*Measured:* {rec['measured']}",
    ]
    extra = [f'*Tolerance:* {t}' for t in [rec.get('tolerance')] if t]
    extra += [f'*Seeds:* {s}' for s in [seeds_text(rec.get('seeds'))] if s]
    if extra:
        lines[-1] += '  \n' + ' · '.join(extra)
    return '\n'.join(lines + [':::'])


def _join_words(items) -> str:
    items = list(items)
    return items[0] if len(items) == 1 else ', '.join(items[:-1]) + ' and ' + items[-1]


def _device_name(d) -> str:
    kind = str(d).split(':')[0].lower()
    return {'cpu': 'CPU', 'cuda': 'CUDA', 'mps': 'MPS', 'xpu': 'XPU'}.get(kind, str(d))


def provenance_line(records: list, not_run: dict | None = None) -> str | None:
    """One line saying where a page's records were measured, aggregated over their provenance: the devices, torch and
    Python versions and dates (a range when several), e.g. `Checked on CPU, torch 2.13.0, Python 3.11.7, 2026-12-07.`
    None when no record carries provenance. `not_run`: records in cells the build skipped, by kind."""
    provs = [r.get('provenance') or {} for r in records]
    provs = [p for p in provs if p]
    if not provs:
        return None

    def vals(key):
        return sorted({str(p[key]) for p in provs if p.get(key)})

    devices = sorted({_device_name(d) for d in vals('device')}, key=lambda d: (d != 'CPU', d))
    parts = [f'Checked on {_join_words(devices) if devices else "an unrecorded device"}']
    if vals('torch'):
        parts.append(f"torch {_join_words(vals('torch'))}")
    if vals('python'):
        parts.append(f"Python {_join_words(vals('python'))}")
    dates = vals('date')
    if dates:
        parts.append(dates[0] if len(dates) == 1 else f'{dates[0]} to {dates[-1]}')
    n = {k: sum(record_kind(r) == k for r in records) for k in CLAIM_KINDS}
    what = f"{_plural(n['post'], 'claim')}, {_plural(n['check'], 'check')}"
    skipped = sum((not_run or {}).values())
    if skipped:
        what += f'; {skipped} more in cells this build did not run'
    return ', '.join(parts) + f' ({what}).'


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def claim_calls(code: str) -> dict:
    """How many `record_claim` calls `code` makes, by kind (`{'post': n, 'check': m}`), read from the `kind=` keyword.
    Used for cells the build did not run (`#| slow` under --skip-slow, `#| cuda` without a GPU): their records are
    counted, not lost. A call whose kind is not a literal counts as a post claim."""
    import ast

    out = {k: 0 for k in CLAIM_KINDS}
    # IPython magics: `%time f(x)` -> `f(x)`, `%%time` and `!cmd` -> nothing
    lines = [
        re.sub(r'^\s*%%?\w+\s*', '', l)
        if l.lstrip().startswith('%')
        else ''
        if l.lstrip().startswith('!')
        else l
        for l in code.splitlines()
    ]
    try:
        tree = ast.parse('\n'.join(lines))
    except SyntaxError:
        tree = None
    if tree is not None:
        for node in ast.walk(tree):
            f = getattr(node, 'func', None)
            if (
                not isinstance(node, ast.Call)
                or getattr(f, 'id', getattr(f, 'attr', None)) != 'record_claim'
            ):
                continue
            kw = next((k.value for k in node.keywords if k.arg == 'kind'), None)
            out['check' if isinstance(kw, ast.Constant) and kw.value == 'check' else 'post'] += 1
        return out
    for m in re.finditer(
        r'\brecord_claim\(', code
    ):  # not Python (a magic the parser rejects): read the call text
        depth, i = 1, m.end()
        while i < len(code) and depth:
            depth += {'(': 1, ')': -1}.get(code[i], 0)
            i += 1
        out[
            'check' if re.search(r'''\bkind\s*=\s*["']check["']''', code[m.end() : i]) else 'post'
        ] += 1
    return out


def _text(src) -> str:
    return ''.join(src) if isinstance(src, list) else (src or '')


def myst_page(nb, rel: str, links: LinkMap) -> tuple:
    """The MyST-NB version of one nbdev-processed notebook: (notebook, ledger records, records in cells not run as
    `{'post': n, 'check': m}`). Records are collected only from post pages (front matter with a `source`), whose
    title block then ends with the records' provenance line."""
    import nbformat
    from nbformat.v4 import new_code_cell, new_markdown_cell

    fm, cells, claims, not_run, has_title = (
        notebook_frontmatter(nb),
        [],
        [],
        {k: 0 for k in CLAIM_KINDS},
        False,
    )
    doc = links.src2doc[rel]
    section, n_shown = fm.get('title', ''), 0

    def heading_from(md):
        nonlocal section
        for is_code, text in _split_fences(md):
            if is_code:
                continue
            for line in text.split('\n'):
                m = _re_heading.match(line)
                if m and len(m.group(1)) > 1:
                    section = _re_heading_attrs.sub(r'\1', m.group(2))

    for c in nb.cells:
        if c.cell_type == 'raw':
            if _text(c.source).lstrip().startswith('---'):
                cells.insert(0, new_markdown_cell(title_block(fm)))
                has_title = True
            continue
        if c.cell_type == 'markdown':
            md = links.markdown(_text(c.source), rel)
            if md.strip().startswith('<!-- WARNING'):
                continue
            heading_from(md)
            cells.append(new_markdown_cell(md))
            continue
        opts, code = split_cell_options(_text(c.source))
        if opts.get('include') is False:
            continue
        code, tags, outs, after = code.rstrip('\n'), [], [], []
        if opts.get('echo') is False or not code.strip():
            tags.append('remove-input')
        if opts.get('code-fold') not in (None, False, 'false'):
            tags.append('hide-input')
        for o in [] if opts.get('output') is False else c.get('outputs', []):
            data = o.get('data', {})
            if (
                o.get('output_type') == 'stream'
                and o.get('name') == 'stderr'
                and opts.get('warning') is False
            ):
                continue
            if CLAIM_MIME in data:
                rec = dict(
                    json.loads(data[CLAIM_MIME])
                    if isinstance(data[CLAIM_MIME], str)
                    else data[CLAIM_MIME]
                )
                n_shown += 1
                rec.update(
                    page=doc,
                    section=section,
                    label=f"claim-{doc.rsplit('.', 1)[0].replace('/', '-')}-{n_shown}",
                )
                if fm.get('source'):
                    claims.append(rec)
                after.append(new_markdown_cell(claim_markdown(rec)))
                continue
            if opts.get('output') == 'asis' and 'text/markdown' in data:
                md = _text(data['text/markdown']).strip('\n')
                md = links.markdown(re.sub(r'^---\s*\n', '', md), rel, showdoc=True)
                heading_from(md)
                after.append(new_markdown_cell(md))
                continue
            if re.search(r'cell-note-(slow|cuda)', _text(data.get('text/html', ''))):
                for k, n in claim_calls(code).items():
                    not_run[k] += n
            outs.append(o)
        if 'remove-input' not in tags or outs:
            cell = new_code_cell(code, metadata={'tags': tags} if tags else {})
            cell.outputs, cell.execution_count = (
                [nbformat.from_dict(o) for o in outs],
                c.get('execution_count'),
            )
            cells.append(cell)
        cells += after
    if not fm.get('source'):
        not_run = {k: 0 for k in CLAIM_KINDS}  # an overview page has no ledger entries
    elif has_title and (claims or any(not_run.values())):
        cells[0] = new_markdown_cell(title_block(fm, provenance_line(claims, not_run)))
    meta = {
        'kernelspec': {'name': 'python3', 'display_name': 'Python 3', 'language': 'python'},
        'language_info': {'name': 'python', 'pygments_lexer': 'ipython3'},
    }
    return nbformat.v4.new_notebook(cells=cells, metadata=meta), claims, not_run


def _md_cell(s):
    return str(s).replace('|', '\\|').replace('\n', ' ')


def _not_run(p: dict) -> dict:
    "A post's records in cells not run, by kind (an int, as older builds stored it, counts as post claims)."
    n = p.get('not_run') or 0
    return (
        {**{k: 0 for k in CLAIM_KINDS}, **n}
        if isinstance(n, dict)
        else {'post': int(n), 'check': 0}
    )


def post_counts(records: list, not_run=None) -> dict:
    """Counts of one post's (or all posts') records: `post` (post claims), one entry per verdict (post claims only),
    `check` (implementation checks) and `not_run` (by kind, records in cells the build did not run)."""
    posts = [r for r in records if record_kind(r) == 'post']
    out = {
        'post': len(posts),
        **{v: sum(r['verdict'] == v for r in posts) for v in VERDICTS},
        'check': sum(record_kind(r) == 'check' for r in records),
    }
    out['not_run'] = _not_run({'not_run': not_run})
    return out


def counts_sentence(c: dict, scope: str = '') -> str:
    """`7 claims{scope}: 4 hold, 1 with a caveat, 1 does not hold, 1 untested` (verdicts with no claim left out);
    `scope` e.g. ` across 3 posts`."""
    parts = [
        f"{c['holds']} hold{'s' if c['holds'] == 1 else ''}" if c['holds'] else '',
        f"{c['caveat']} with a caveat" if c['caveat'] else '',
        f"{c['does not hold']} do{'es' if c['does not hold'] == 1 else ''} not hold"
        if c['does not hold']
        else '',
        f"{c['untested']} untested" if c['untested'] else '',
    ]
    parts = [p for p in parts if p]
    return _plural(c['post'], 'claim') + scope + (f": {', '.join(parts)}" if parts else '')


_CLAIMS_INTRO = (
    "Each row comes from a `record_claim` call at the end of a check cell, collected from the notebooks as this site "
    "was built, so the tables cannot drift from the asserts. A verdict covers only the setting the notebook measured, "
    "by a rule fixed in the cell before the run.",
    '',
    "**Claims** are what a post (or its paper) says. *Holds*: the measurement agrees with the post. *Caveat*: it "
    "agrees only under a condition the post does not state, or the effect was not reproduced at the size measured "
    "without being contradicted. *Does not hold*: the measurement contradicts the post, and the cell asserts what "
    "was measured instead. *Untested*: the notebook cannot test the claim as the post states it (the reason is "
    "given; what the notebook did show is recorded as its own, narrower claim).",
    '',
    "**Checks** are not claims of a post: each says that this project's implementation agrees with a peer library or "
    "a closed form, at the tolerance stated. They are listed under *Verified against* and are not counted as claims.",
)


def claims_page(posts: list, ledger_href: str | None = 'claims.json') -> str:
    """The generated Claims page: per post (in sidebar order) a table of its claims (kind "post") with their verdicts
    and a "Verified against" table of its checks (kind "check") with their tolerances, each row linking to its box.
    `posts`: dicts with title, doc, source, original_title, claims (records) and not_run (records in cells this
    build skipped, by kind). `ledger_href`: where the machine-readable ledger is served (None: not linked)."""
    allrecs = [r for p in posts for r in p['claims']]
    tot = post_counts(allrecs, {k: sum(_not_run(p)[k] for p in posts) for k in CLAIM_KINDS})
    across = ' across ' + _plural(len(posts), 'post')
    lines = [
        '# Claims',
        '',
        '{.post-lead}',
        "What each post claims, what its notebook measured and the verdict; and, apart from the claims, where "
        "this project's code was verified against a peer library or a closed form.",
        '',
        *_CLAIMS_INTRO,
        '',
        f"{counts_sentence(tot, across)}; "
        f"{_plural(tot['check'], 'check')} against peer libraries or closed forms.",
        '',
    ]
    if ledger_href:
        lines += [
            f'The ledger is also machine-readable: <a class="reference external" href="{ledger_href}">'
            f'{posixpath.basename(ledger_href)}</a> holds one record per row below (post, notebook, cell anchor, '
            "kind, claim, measured values, tolerance, verdict, seeds) with the device, torch and Python versions "
            "and date of the run that produced it.",
            '',
        ]
    nr = tot['not_run']
    if nr['post'] or nr['check']:
        lines += [
            f"{{.cell-note}}\nThis build did not run every cell (`#| slow` cells are skipped by `--skip-slow`, "
            f"`#| cuda` cells without a GPU); those cells record {_plural(nr['post'], 'more claim')} and "
            f"{_plural(nr['check'], 'more check')}.",
            '',
        ]
    for p in posts:
        c = post_counts(p['claims'], p.get('not_run'))
        lines += [f"## {p['title']}", '']
        if p.get('source'):
            lines += [
                f"Post: [{p.get('original_title') or p['source']}]({p['source']}) · "
                f"page: [{p['title']}]({p['doc']})",
                '',
            ]
        if c['not_run']['post'] or c['not_run']['check']:
            lines += [
                f"{{.cell-note}}\n{_plural(c['not_run']['post'], 'more claim')} and "
                f"{_plural(c['not_run']['check'], 'more check')} are recorded in cells this build did not "
                "run.",
                '',
            ]
        if not p['claims']:
            lines += ['No claims recorded yet.', '']
            continue
        lines += [f"{counts_sentence(c)}; {_plural(c['check'], 'check')}.", '']
        claims = [r for r in p['claims'] if record_kind(r) == 'post']
        checks = [r for r in p['claims'] if record_kind(r) == 'check']

        def where(r):
            return _md_cell(r['section']).replace('`', '') or 'the cell'

        def badge(r):
            return f"[{r['verdict']}]{{.verdict .verdict-{verdict_css(r['verdict'])}}}"

        if claims:
            lines += [
                ':::{container} claims-table',
                '| Verdict | Claim (and where it is checked) | Measured |',
                '|---|---|---|',
            ]
            lines += [
                f"| {badge(r)} | {_md_cell(r['claim'])} {{ref}}`§ {where(r)} <{r['label']}>` | "
                f"{_md_cell(r['measured'])} |"
                for r in claims
            ]
            lines += [':::', '']
        if checks:
            lines += [
                '**Verified against** — what this project checked against a peer library or a closed form:',
                '',
                ':::{container} claims-table checks-table',
                '| Verdict | What agrees with what (and where) | Measured | Tolerance |',
                '|---|---|---|---|',
            ]
            lines += [
                f"| {badge(r)} | {_md_cell(r['claim'])} {{ref}}`§ {where(r)} <{r['label']}>` | "
                f"{_md_cell(r['measured'])} | {_md_cell(r.get('tolerance') or '—')} |"
                for r in checks
            ]
            lines += [':::', '']
    return '\n'.join(lines)


def catalog_cell(c: dict | None, link: str | None) -> str:
    "The index catalog's Claims cell of one post: post claims only (checks are not claims), with the bad news."
    if c is None:
        return '—'
    skipped = f" (+{c['not_run']['post']} in cells not run)" if c['not_run']['post'] else ''
    text = f"{_plural(c['post'], 'claim')}: {c['does not hold']} do not hold, {c['untested']} untested{skipped}"
    return f'[{text}]({link})'


def catalog_with_claims(md: str, counts: dict, links_to: dict) -> str:
    """Add a Claims column to the index's catalog table (header `| # | Post |`): for each implemented post, how many of
    its claims were tested and how many do not hold or are untested (`counts`: `post_counts` by source name), linked
    to its section of the Claims page."""
    out, in_table = [], False
    for line in md.split('\n'):
        if line.startswith('| # | Post |'):
            in_table = True
            out += [':::{container} catalog', line + ' Claims |']
            continue
        if in_table and re.match(r'^\|[-|: ]+\|$', line):
            out.append(line + '---|')
            continue
        if in_table and line.startswith('|'):
            m = re.search(r'\]\(([^()\s]+\.ipynb)\)', line)
            c = counts.get(m.group(1)) if m else None
            out.append(line + f' {catalog_cell(c, links_to.get(m.group(1)) if m else None)} |')
            continue
        if in_table:
            out.append(':::')
        in_table = False
        out.append(line)
    return '\n'.join(out + ([':::'] if in_table else []))


LEDGER_FORMAT = 'su_notes claims ledger'
LEDGER_VERSION = 1


def html_anchor(label: str) -> str:
    "The id Sphinx gives a MyST label in the HTML (docutils' `make_id`: lower case, `_` and other marks become `-`)."
    from docutils.nodes import make_id

    return make_id(label)


LEDGER_FIELDS = (
    'post',
    'source',
    'title',
    'notebook',
    'page',
    'anchor',
    'section',
    'kind',
    'claim',
    'measured',
    'values',
    'tolerance',
    'verdict',
    'seeds',
    'device',
    'torch',
    'python',
    'date',
)


def archive_id(source: str | None) -> str | None:
    "The post's archive id from its front-matter `source` (`https://kexue.fm/archives/7387` -> `7387`)."
    if not source:
        return None
    m = re.search(r'/archives/(\d+)', str(source))
    return m.group(1) if m else str(source)


def claims_ledger(posts: list, nbs_prefix: str = 'nbs', built: str | None = None) -> dict:
    """The machine-readable ledger (`claims.json`, served next to the Claims page): the counts the Claims page shows,
    one entry per post and one flat record per `record_claim` output. Each record: `post` (archive id), `source`,
    `title`, `notebook` (path in the repository), `page` and `anchor` (the site page and the claim box's id, as the
    Claims page links them), `section`, `kind`, `claim`, `measured`, `values`, `tolerance` (null when none),
    `verdict`, `seeds`, and the run's `device`, `torch`, `python`, `date` (null where a record has no provenance)."""
    import datetime

    records, entries = [], []
    for p in posts:
        nb_path = posixpath.join(nbs_prefix, p['rel']) if nbs_prefix else p['rel']
        page = str(PurePosixPath(p['doc']).with_suffix('.html'))
        c = post_counts(p['claims'], p.get('not_run'))
        entries.append(
            dict(
                post=archive_id(p.get('source')),
                source=p.get('source'),
                title=p['title'],
                notebook=nb_path,
                page=page,
                counts=c,
            )
        )
        for r in p['claims']:
            prov = r.get('provenance') or {}
            records.append(
                dict(
                    post=archive_id(p.get('source')),
                    source=p.get('source'),
                    title=p['title'],
                    notebook=nb_path,
                    page=page,
                    anchor=html_anchor(r['label']),
                    section=r.get('section'),
                    kind=record_kind(r),
                    claim=r['claim'],
                    measured=r['measured'],
                    values=dict(r.get('values') or {}),
                    tolerance=r.get('tolerance') or None,
                    verdict=r['verdict'],
                    seeds=list(r.get('seeds') or []),
                    **{k: prov.get(k) for k in ('device', 'torch', 'python', 'date')},
                )
            )
    tot = post_counts(
        [r for p in posts for r in p['claims']],
        {k: sum(_not_run(p)[k] for p in posts) for k in CLAIM_KINDS},
    )
    built = built or datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds')
    return dict(
        format=LEDGER_FORMAT,
        version=LEDGER_VERSION,
        built=built,
        counts=tot,
        posts=entries,
        records=records,
    )


def _ledger_posts(data) -> list:
    "(title, records, not_run) per post from a `claims.json`: this format, or the older list of posts."
    if isinstance(data, dict) and data.get('format') == LEDGER_FORMAT:
        by = {}
        for r in data['records']:
            by.setdefault(r['page'], []).append(r)
        return [
            (e['title'], by.get(e['page'], []), e['counts'].get('not_run')) for e in data['posts']
        ]
    if isinstance(
        data, list
    ):  # before this format: [{title, claims, not_run, ...}], records without a kind
        return [(p.get('title', '?'), p.get('claims', []), p.get('not_run')) for p in data]
    raise ValueError(
        f'Invalid claims ledger: expected a {LEDGER_FORMAT!r} object or a list of posts, '
        f'got {type(data).__name__}'
    )


def claims_summary(path) -> str:
    """The Claims page's counts from a built `claims.json` (this format, or the older list of posts, whose records
    have no kind and all count as post claims), as Markdown: per post and in total, post claims by verdict, checks,
    and records in cells the build did not run."""
    data = json.loads(Path(path).read_text(encoding='utf-8'))
    head = ['Post', 'claims', *VERDICTS, 'checks', 'not run (claims/checks)']
    lines = ['| ' + ' | '.join(head) + ' |', '|' + '---|' * len(head)]
    rows, allrecs, nr_all = _ledger_posts(data), [], {k: 0 for k in CLAIM_KINDS}

    def row(name, c):
        return (
            '| '
            + ' | '.join(
                [
                    name,
                    str(c['post']),
                    *(str(c[v]) for v in VERDICTS),
                    str(c['check']),
                    f"{c['not_run']['post']}/{c['not_run']['check']}",
                ]
            )
            + ' |'
        )

    for title, recs, nr in rows:
        c = post_counts(recs, nr)
        allrecs += recs
        for k in CLAIM_KINDS:
            nr_all[k] += c['not_run'][k]
        lines.append(row(_md_cell(title), c))
    tot = post_counts(allrecs, nr_all)
    lines.append(row(f"**all {_plural(len(rows), 'post')}**", tot))
    return '\n'.join(
        [
            f"{counts_sentence(tot, ' across ' + _plural(len(rows), 'post'))}; "
            f"{_plural(tot['check'], 'check')}; in cells not run: {_plural(nr_all['post'], 'claim')}, "
            f"{_plural(nr_all['check'], 'check')}.",
            '',
            *lines,
        ]
    )


def toctree_markdown(contents: list, src2doc: dict) -> str:
    "Hidden toctrees reproducing nbdev's sidebar: top-level pages, then one captioned toctree per topic folder."

    def entry(rel):
        return src2doc[rel].rsplit('.', 1)[0]

    top = [entry(f) for f in contents if isinstance(f, str) and f in src2doc and f != 'index.ipynb']
    blocks = ['```{toctree}\n:hidden:\n\n' + '\n'.join(top + ['claims']) + '\n```']
    for sec in contents:
        if isinstance(sec, dict):
            files = [entry(f) for f in sidebar_files(sec.get('contents', [])) if f in src2doc]
            if files:
                blocks.append(
                    f"```{{toctree}}\n:hidden:\n:caption: {sec['section']}\n\n"
                    + '\n'.join(files)
                    + '\n```'
                )
    return '\n\n'.join(blocks)


def write_sources(stage: Path, proc_dir: Path, out: Path, cfg, nbs_prefix: str = 'nbs') -> dict:
    """Write the MyST sources of every sidebar page, the Claims page and the index's toctrees to `out`, and the
    ledger to `_build/claims.json` (`main` serves it next to the Claims page). `nbs_prefix`: the notebook folder
    relative to the repository, which the ledger's notebook paths start with."""
    import nbformat
    from nbdev.frontmatter import _fm2dict, _re_fm_md

    if out.exists():
        shutil.rmtree(out)
    contents = derive_sidebar(stage)
    files = [f for f in sidebar_files(contents) if f.endswith(('.ipynb', '.md'))]
    fms = {
        f: (
            notebook_frontmatter(nbformat.read(proc_dir / f, as_version=4))
            if f.endswith('.ipynb')
            else _fm2dict((stage / f).read_text(encoding='utf-8'), nb=False)
        )
        for f in files
    }
    src2doc = {f: source_name(f, fms[f]) for f in files}
    site_url = f"{cfg.get('doc_host', '').rstrip('/')}{cfg.get('doc_baseurl', '')}"
    links = LinkMap(src2doc, site_url)
    pages, posts = {}, []
    for f in files:
        if f.endswith('.ipynb'):
            nb, claims, not_run = myst_page(nbformat.read(proc_dir / f, as_version=4), f, links)
            pages[f] = nb
            if fms[f].get('source'):
                posts.append(
                    dict(
                        rel=f,
                        doc=src2doc[f],
                        title=str(fms[f].get('title', f)),
                        source=fms[f]['source'],
                        original_title=fms[f].get('original_title'),
                        claims=claims,
                        not_run=not_run,
                    )
                )
        else:
            text = (stage / f).read_text(encoding='utf-8')
            body = _re_fm_md.sub('', text.lstrip(), count=1) if fms[f] else text
            pages[f] = title_block(fms[f]) + '\n' + links.markdown(body, f)
    # the index's links are already rewritten to source names (relative to the index, at the root)
    counts = {p['doc']: post_counts(p['claims'], p['not_run']) for p in posts}
    to_claims = {p['doc']: f"claims.md#{pandoc_id(p['title'])}" for p in posts}
    index = pages.get('index.ipynb')
    if index is not None:
        for c in index.cells:
            if c.cell_type == 'markdown':
                c.source = catalog_with_claims(c.source, counts, to_claims)
        index.cells.append(nbformat.v4.new_markdown_cell(toctree_markdown(contents, src2doc)))
    for f, page in pages.items():
        dst = out / src2doc[f]
        dst.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(page, str):
            dst.write_text(page, encoding='utf-8')
        else:
            nbformat.write(page, dst)
    (out / 'claims.md').write_text(claims_page(posts), encoding='utf-8')
    for p in stage.rglob('*'):  # images referenced from markdown, next to their pages
        rel = p.relative_to(stage)
        if (
            p.is_file()
            and p.suffix.lower() in RESOURCE_EXTS
            and not any(s.startswith(('_', '.')) for s in rel.parts)
        ):
            d = out / posixpath.dirname(src2doc.get(rel.as_posix(), rel.as_posix())) / p.name
            d.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(p, d)
    ledger = claims_ledger(posts, nbs_prefix)
    (BUILD / 'claims.json').write_text(
        json.dumps(ledger, ensure_ascii=False, indent=1, default=str) + '\n', encoding='utf-8'
    )
    return dict(pages=len(pages) + 1, posts=posts, ledger=ledger)


def run_sphinx(src: Path, out: Path, jobs: int) -> int:
    "sphinx-build with `docs/conf.py`; warnings (broken links included) are errors."
    cmd = [
        sys.executable,
        '-m',
        'sphinx',
        '-b',
        'html',
        '-W',
        '--keep-going',
        '-q',
        '-j',
        str(max(1, jobs)),
        '-c',
        str(CONF_DIR),
        '-d',
        str(BUILD / 'doctrees'),
        str(src),
        str(out),
    ]
    return subprocess.run(cmd, cwd=ROOT).returncode


# ----------------------------------------------------------------------------------------------------------
# 5. README
# ----------------------------------------------------------------------------------------------------------


def readme_markdown(nb_path: Path, cfg) -> str:
    """README.md text from `nb_path` (nbs/index.ipynb), not executed: nbdev's processing, the quarto cell options
    applied, code as fenced blocks; links to other pages become repository paths (nbs/...)."""
    from execnb.nbio import read_nb
    from nbdev.processors import FilterDefaults

    nb = read_nb(nb_path)
    os.environ['IN_TEST'] = '1'
    try:
        FilterDefaults()(nb)
    finally:
        os.environ.pop('IN_TEST', None)
    nbs_rel = posixpath.relpath(
        nb_path.parent.resolve().as_posix(), Path(cfg.config_path).resolve().as_posix()
    )

    site = f"{cfg.get('doc_host', '').rstrip('/')}{cfg.get('doc_baseurl', '')}".rstrip('/')

    def fix(
        m,
    ):  # a page of nbs/ -> its path in the repository; a generated page (claims.md) -> the site
        tgt = m.group(2)
        if not _re_scheme.match(tgt):
            path = posixpath.normpath(
                posixpath.join(posixpath.dirname(nb_path.name), tgt.partition('#')[0])
            )
            tgt = (
                posixpath.normpath(posixpath.join(nbs_rel, tgt))
                if (nb_path.parent / path).exists()
                else f"{site}/{page_url(path)}"
                + (f"#{tgt.partition('#')[2]}" if '#' in tgt else '')
            )
        return f'[{m.group(1)}]({tgt})'

    fm, parts = notebook_frontmatter(nb), []
    for c in nb.cells:
        if c.cell_type == 'markdown':
            parts.append(
                ''.join(
                    _re_link.sub(fix, t) if not code else t
                    for code, t in [(k, v + '\n') for k, v in _split_fences(c.source)]
                ).rstrip('\n')
            )
        elif c.cell_type == 'code':
            opts, code = split_cell_options(c.source)
            if opts.get('include') is False or opts.get('echo') is False or not code.strip():
                continue
            parts.append(f"```\n{code.strip(chr(10))}\n```")
    warn = '<!-- WARNING: THIS FILE WAS AUTOGENERATED! DO NOT EDIT! -->'
    head = [f"# {fm.get('title', cfg.get('lib_name'))}", warn] + (
        [f"> {fm['description']}"] if fm.get('description') else []
    )
    body = [p for p in parts if p.strip() and p.strip() != warn]
    return re.sub(r'\n{3,}', '\n\n', '\n\n'.join(head + body)) + '\n'


def build_readme(quarto: bool, cfg) -> Path:
    readme = Path(cfg.config_path) / 'README.md'
    if quarto:
        from nbdev.quarto import nbdev_readme

        nbdev_readme.__wrapped__()
        return readme
    text = readme_markdown(Path(cfg.nbs_path) / cfg.get('readme_nb', 'index.ipynb'), cfg)
    if not readme.exists() or readme.read_text(encoding='utf-8') != text:
        readme.write_text(text, encoding='utf-8')
        print('wrote README.md')
    else:
        print('README.md unchanged')
    return readme


# ----------------------------------------------------------------------------------------------------------
# main
# ----------------------------------------------------------------------------------------------------------


def _stage_tree(nbs: Path, stage: Path):
    if stage.exists():
        shutil.rmtree(stage)
    pat = shutil.ignore_patterns(
        '*.ipynb', '.ipynb_checkpoints', '__pycache__', 'sidebar.yml', '.*'
    )

    def ignore(
        d, names
    ):  # notebooks come from the execution step; skip sockets and other non-files
        return set(pat(d, names)) | {
            n
            for n in names
            if not (os.path.isfile(os.path.join(d, n)) or os.path.isdir(os.path.join(d, n)))
        }

    shutil.copytree(nbs, stage, ignore=ignore)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__.split('\n\n')[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        '--readme-only', action='store_true', help='only regenerate README.md from nbs/index.ipynb'
    )
    ap.add_argument(
        '--skip-slow', action='store_true', help='do not run `#| slow` cells (quick iteration)'
    )
    ap.add_argument(
        '--jobs',
        type=int,
        default=int(os.environ.get('NPROC', 2)),
        help='notebooks executed in parallel',
    )
    ap.add_argument('--timeout', type=int, default=1800, help='per-cell timeout in seconds')
    ap.add_argument(
        '--cached',
        action='store_true',
        help='reuse the last execution (_build/exec) of every notebook whose file and flags are unchanged; '
        'su_notes/ is NOT compared: for iterating on pages and the site, never for publishing',
    )
    ap.add_argument('--offline', action='store_true', help='use Sphinx even if quarto is on PATH')
    ap.add_argument(
        '--nbs',
        type=Path,
        default=None,
        help="notebook folder to build (default: settings.ini's nbs_path); for trying a stand-in tree",
    )
    ap.add_argument(
        '--claims-summary',
        nargs='?',
        const=str(ROOT / '_docs' / 'claims.json'),
        default=None,
        metavar='CLAIMS_JSON',
        help="print the Claims page's counts (post claims by verdict, checks) from "
        "a built claims.json (default: _docs/claims.json) and exit",
    )
    args = ap.parse_args(argv)
    if args.claims_summary:
        print(claims_summary(args.claims_summary))
        return 0

    os.chdir(ROOT)
    from nbdev.config import get_config

    cfg = get_config()
    quarto = bool(shutil.which('quarto')) and not args.offline
    if args.readme_only:
        build_readme(quarto, cfg)
        return 0

    t_start = time.perf_counter()
    nbs, out = (args.nbs.resolve() if args.nbs else Path(cfg.nbs_path)), Path(cfg.doc_path)
    os.environ.update(
        kernel_env()
    )  # the same environment for nbdev's exec_show_docs shell as for the kernels
    from nbdev.doclinks import nbglob

    notebooks = [Path(p) for p in nbglob(nbs)]
    stage = BUILD / 'nbs'
    _stage_tree(nbs, stage)
    proc_cache = (
        Path(cfg.config_path) / '_proc'
    )  # cleared, so pages of deleted notebooks do not linger
    if proc_cache.exists():
        shutil.rmtree(proc_cache)
    results = execute_all(notebooks, nbs, stage, None if quarto else proc_cache, args)
    failed = [r for r in results if r['error']]
    if failed:
        print(f'\nmake docs FAILED: {len(failed)} of {len(results)} notebook(s):', file=sys.stderr)
        for r in failed:
            print(f"\n=== {nbs.name}/{r['rel']} ===\n{r['error']}", file=sys.stderr)
        return 1
    t_exec = time.perf_counter()

    if quarto:
        from nbdev.quarto import nbdev_docs

        for f in (
            'nbdev.yml',
            '_quarto.yml',
        ):  # nbdev_docs refreshes nbs/nbdev.yml; the staged copy is read
            if (nbs / f).exists():
                shutil.copy2(nbs / f, stage / f)
        nbdev_docs.__wrapped__(
            path=str(stage), n_workers=args.jobs, file_glob=None, file_re=DOC_FILE_RE
        )
        print(f'quarto site written to {out} in {time.perf_counter() - t_start:.0f}s')
        return 0

    try:
        nbs_prefix = nbs.resolve().relative_to(ROOT).as_posix()
    except ValueError:
        nbs_prefix = nbs.resolve().as_posix()  # a stand-in tree outside the repository (--nbs)
    info = write_sources(stage, proc_cache, SITE_SRC, cfg, nbs_prefix)
    html_out = BUILD / 'html'
    if html_out.exists():
        shutil.rmtree(html_out)
    if run_sphinx(SITE_SRC, html_out, args.jobs):
        print(
            '\nmake docs FAILED: sphinx-build reported warnings or errors (above); sources in '
            f'{SITE_SRC.relative_to(ROOT)}/',
            file=sys.stderr,
        )
        return 1
    if out.exists():
        shutil.rmtree(out)
    for d in (
        '_sources',
        '.doctrees',
    ):  # empty with html_copy_source = False; doctrees live in _build/
        if (html_out / d).is_dir() and not any((html_out / d).iterdir()):
            (html_out / d).rmdir()
    shutil.copy2(
        BUILD / 'claims.json', html_out / 'claims.json'
    )  # next to claims.html, which links it
    shutil.move(str(html_out), str(out))
    (out / '.nojekyll').touch()
    t_render = time.perf_counter()
    build_readme(False, cfg)
    c = info['ledger']['counts']
    print(
        f"\n{info['pages']} pages written to {out}/ in {t_render - t_start:.0f}s (execute + nbdev "
        f"{t_exec - t_start:.0f}s, Sphinx {t_render - t_exec:.0f}s); {counts_sentence(c)} and "
        f"{_plural(c['check'], 'check')} from {_plural(len(info['posts']), 'post')} ({out}/claims.json)"
    )
    return 0


if __name__ == '__main__':
    sys.exit(main())
