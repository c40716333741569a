#!/usr/bin/env python
"""Build the documentation site into `_docs/` and `README.md` from `nbs/` (`make docs`, `make readme`).

Notebooks are committed without outputs, so every build first EXECUTES them:

1. Execute. Each notebook found by nbdev's `nbglob` (scratch `_*.ipynb` excluded) is run with nbclient in a
   kernel on this venv's interpreter (`sys.executable`), cwd = the notebook's folder, a per-cell timeout, and
   the cells nbdev would not run skipped: the `nbdev_export()` cell, `#| eval: false`, `#| cuda` without a
   GPU (a visible note replaces the output) and, with `--skip-slow`, `#| slow`. Stream outputs are coalesced
   so tqdm's carriage-return updates collapse to the final bar. Executed copies go to `_build/nbs/`, a copy
   of the `nbs/` tree. A failing cell stops the build with the notebook, the cell and the traceback.
2. Publish.
   * `quarto` on PATH: nbdev's own path, `nbdev_docs(path=_build/nbs)` (which also runs `nbdev_readme`).
   * otherwise (offline): the same nbdev processing that `nbdev_docs` applies, i.e. `nbdev.serve_drv.main`
     with `nbdev.processors.FilterDefaults` (front matter, `show_doc` for exported symbols via
     `exec_show_docs`, `#| hide`, directive stripping, doc links) writes `_proc/`, exactly as `proc_nbs`
     does; the sidebar comes from `nbdev_sidebar`; then nbconvert's `HTMLExporter` renders each page with
     `tools/site_template/su_site` (a page frame extending nbconvert's `lab` template) and the quarto cell
     options left in the processed cells (`echo`, `output`, `include`, `code-fold`, `fig-cap`, `warning`)
     are applied. Math is typeset by the MathJax 2 copy shipped in `jupyter-server-mathjax`, copied into
     `_docs/site_libs/mathjax`; pages make no request to any other host.
3. README. `nbdev_readme` with quarto; offline, the processed (not executed, hence deterministic)
   `nbs/index.ipynb` through nbconvert's `MarkdownExporter`.

Page URLs are quarto's: nbdev's `_nbpath2html` for notebooks (`optim/10_adax.ipynb` -> `optim/adax.html`),
the file stem for `.md`/`.qmd` pages (`benchmarks.md` -> `benchmarks.html`).
"""
from __future__ import annotations

import argparse, hashlib, html, json, os, posixpath, re, shutil, subprocess, sys, time, traceback
from pathlib import Path, PurePosixPath

# jsonschema (imported by nbformat) imports `rfc3987_syntax` when it is installed (jupyter-events pulls it
# in), which compiles ~40 lark grammars: ~9 s of CPU in every process that reads a notebook. nbformat's
# schema does not use the IRI formats it validates, so the build runs without it.
sys.modules.setdefault('rfc3987_syntax', None)

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE_DIR = Path(__file__).resolve().parent / 'site_template'
BUILD = ROOT / '_build'
# nbdev_sidebar's default file_re (`\.(?:ipynb|qmd|html)$`) plus `.md`, so top-level markdown pages such
# as nbs/benchmarks.md are listed too (quarto renders them either way).
DOC_FILE_RE = r'\.(?:ipynb|qmd|md|html)$'
PAGE_EXTS = ('.ipynb', '.md', '.qmd')
EXEC_VERSION = '1'  # bump to invalidate `--cached` executions when the execution step changes
MATHJAX_CONFIG = 'TeX-AMS-MML_HTMLorMML-full,Safe'  # the only combined config jupyter-server-mathjax ships


# ----------------------------------------------------------------------------------------------------------
# Small pure helpers (tested in tests/test_site.py without building anything)
# ----------------------------------------------------------------------------------------------------------

def page_url(rel, fm: dict | None = None) -> str:
    """Site URL (relative to the site root) of the page built from `rel`, a path relative to nbs/.
    Notebooks use nbdev's mapping (number prefix dropped, lower case); `.md`/`.qmd` keep their stem, as
    quarto does; an `output-file` front-matter key wins, as in quarto."""
    p = PurePosixPath(str(rel).replace(os.sep, '/'))
    if fm and fm.get('output-file'): return str(p.with_name(str(fm['output-file'])))
    if p.suffix == '.ipynb':
        from nbdev.doclinks import _nbpath2html
        return _nbpath2html(Path(p)).as_posix()
    if p.suffix in ('.md', '.qmd'): return str(p.with_suffix('.html'))
    return str(p)


def rel_href(target_url: str, from_url: str) -> str:
    "Relative href from the page at `from_url` to `target_url` (both relative to the site root)."
    start = posixpath.dirname(from_url) or '.'
    return posixpath.relpath(target_url, start)


def root_prefix(url: str) -> str:
    "`../` repeated once per folder level of `url`: the path from that page back to the site root."
    return '../' * url.count('/')


def _first_arg(d: dict, k: str) -> str:
    v = d.get(k) or ['']
    return str(v[0]).lower()


def cell_skip_reason(cell, skip_slow: bool = False, has_cuda: bool = True) -> str | None:
    """Why the docs build does not execute `cell` (None: execute it). Uses nbdev's own directive parser,
    so `#|cuda`, `#| cuda` and `# | cuda` are read exactly as nbdev_test reads them."""
    from nbdev.process import extract_directives
    if cell.get('cell_type') != 'code': return None
    src = cell.get('source') or ''
    if isinstance(src, list): src = ''.join(src)
    if 'nbdev_export' + '()' in src: return 'nbdev_export'
    from fastcore.basics import AttrDict
    d = extract_directives(AttrDict(source=src), remove=False)
    if _first_arg(d, 'eval:') == 'false': return 'eval: false'
    if 'cuda' in d and not has_cuda: return 'cuda'
    if 'slow' in d and skip_slow: return 'slow'
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
            try: v = yaml.safe_load(m.group(2)) if m.group(2) else None
            except Exception: v = m.group(2)
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


def _attrs_html(attrs: str) -> str:
    out, classes = [], []
    for k, v, sel in _re_attr.findall(attrs):
        if sel and sel[0] == '.': classes.append(sel[1:])
        elif sel: out.append(f'id="{html.escape(sel[1:])}"')
        else: out.append(f'{k}="{html.escape(v.strip(chr(34)).strip(chr(39)))}"')
    if classes: out.append(f'class="{" ".join(classes)}"')
    return ' '.join(out)


def pandoc_md_to_commonmark(md: str) -> str:
    """Rewrite the pandoc/quarto markdown extensions nbdev emits into what nbconvert's mistune renders:
    link attributes (`[source](url){target="_blank" style=...}` from `show_doc`) become `<a>` tags, fenced
    divs (`::: {.callout-note}` ... `:::`) become `<div>`s, heading attributes (`## X {#id}`) are dropped."""
    def _link(m):
        attrs = _attrs_html(m.group(3))
        return f'<a href="{html.escape(m.group(2))}" {attrs}>{m.group(1)}</a>'
    md = _re_attr_link.sub(_link, md)
    md = _re_heading_attrs.sub(r'\1', md)
    if ':::' not in md: return md
    out, in_code = [], False
    for line in md.split('\n'):
        if line.lstrip().startswith('```'): in_code = not in_code
        m = None if in_code else _re_div.match(line)
        if m and m.group(2):
            a = m.group(2)
            attrs = _attrs_html(a[1:-1]) if a.startswith('{') else f'class="{a}"'
            out += ['', f'<div {attrs}>', '']
        elif m: out += ['', '</div>', '']
        else: out.append(line)
    return '\n'.join(out)


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
        if isinstance(item, str): out.append(item)
        else:
            if item.get('href'): out.append(item['href'])
            out += sidebar_files(item.get('contents', []))
    return out


def notebook_frontmatter(nb) -> dict:
    "Front matter of a notebook processed by nbdev (its first raw `---` cell), else {}."
    from nbdev.frontmatter import _fm2dict
    for c in nb.cells:
        if c.cell_type == 'raw':
            fm = _fm2dict(c.source)
            if fm: return fm
    return {}


# ----------------------------------------------------------------------------------------------------------
# 1. Execution (runs in worker processes)
# ----------------------------------------------------------------------------------------------------------

def _note_output(reason: str):
    import nbformat
    msgs = {
        'cuda': ('This cell needs a GPU (<code>#| cuda</code>): it was not run when these pages were built '
                 '(<code>torch.cuda.is_available()</code> was False there).',
                 'This cell needs a GPU (#| cuda): it was not run when these pages were built.'),
        'slow': ('This <code>#| slow</code> cell was skipped in this build (<code>--skip-slow</code>); '
                 'run <code>make docs</code> for its output.',
                 'This #| slow cell was skipped in this build (--skip-slow).'),
    }
    if reason not in msgs: return None
    h, t = msgs[reason]
    return nbformat.v4.new_output('display_data', data={
        'text/html': f'<div class="cell-note cell-note-{reason}" role="note">{h}</div>', 'text/plain': t})


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
            return KernelSpec(argv=[sys.executable, '-m', 'ipykernel_launcher', '-f', '{connection_file}'],
                              display_name=f'Python ({sys.executable})', language='python', name=kernel_name,
                              resource_dir=str(ROOT))

    import tempfile
    ipc_dir = tempfile.mkdtemp(prefix='su_docs_kernel_')

    class DocsClient(NotebookClient):
        def create_kernel_manager(self):
            # ipc transport: parallel workers cannot race for the same TCP port
            self.km = AsyncKernelManager(kernel_name='python3', kernel_spec_manager=VenvKernelSpecs(),
                                         transport='ipc', ip=str(Path(ipc_dir) / 'kernel'), config=self.config)
            return self.km

        async def async_execute_cell(self, cell, cell_index, execution_count=None, store_history=True):
            self.current_index = cell_index
            if cell.cell_type == 'code' and cell_index in skips:
                cell.outputs = [o for o in [_note_output(skips[cell_index])] if o]
                cell.execution_count = None
                return cell
            return await super().async_execute_cell(cell, cell_index, execution_count, store_history)

    client = DocsClient(nb, timeout=timeout, startup_timeout=180, kernel_name='python3', allow_errors=False,
                        record_timing=False, resources={'metadata': {'path': cwd}})
    client.ipc_dir = ipc_dir
    return client


def _cell_ref(nb, idx) -> str:
    if idx is None: return 'unknown cell'
    code_no = sum(1 for c in nb.cells[:idx + 1] if c.cell_type == 'code')
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


def execute_notebook(src: Path, dst: Path, *, skip_slow=False, has_cuda=False, timeout=1800) -> dict:
    """Execute `src` (cwd = its folder) and write the executed copy to `dst`. Returns a report dict;
    on failure `error` holds which cell failed and why."""
    import nbformat
    from nbconvert.preprocessors import CoalesceStreamsPreprocessor
    nb = nbformat.read(src, as_version=4)
    skips = {i: r for i, c in enumerate(nb.cells)
             if (r := cell_skip_reason(c, skip_slow=skip_slow, has_cuda=has_cuda))}
    for c in nb.cells:
        if c.cell_type == 'code': c.outputs, c.execution_count = [], None
    client = _make_client(nb, str(src.parent), timeout, skips)
    t0 = time.perf_counter()
    err = None
    try: client.execute(env=kernel_env())
    except Exception as e:
        idx = getattr(client, 'current_index', None)
        msg = re.sub(r'\x1b\[[0-9;]*[A-Za-z]', '', str(e))  # the kernel's traceback is ANSI-coloured
        if type(e).__name__ == 'CellExecutionError':  # its message already holds the cell source and traceback
            err = f"{_cell_ref(nb, idx).splitlines()[0].rstrip(':')}\n{msg}"
        else: err = f'{_cell_ref(nb, idx)}\n{type(e).__name__}: {msg}'
    secs = time.perf_counter() - t0
    shutil.rmtree(client.ipc_dir, ignore_errors=True)
    nb, _ = CoalesceStreamsPreprocessor().preprocess(nb, {})  # tqdm's \r updates -> the final bar
    dst.parent.mkdir(parents=True, exist_ok=True)
    if err: dst = dst.with_suffix('.failed.ipynb')
    nbformat.write(nb, dst)
    return dict(exec_s=secs, error=err, skipped=sorted(set(skips.values())), failed_copy=str(dst) if err else None)


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
            if hfile.exists(): hfile.unlink()
            r = execute_notebook(src, cache, skip_slow=job['skip_slow'], has_cuda=job['has_cuda'],
                                 timeout=job['timeout'])
            res.update(exec_s=r['exec_s'], skipped=r['skipped'])
            if r['error']:
                res['error'] = f"executing {job['rel']} failed at {r['error']}\n(partial output: {r['failed_copy']})"
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
            try: nbdev.serve_drv.main((staged, proc, FilterDefaults))
            except Exception as e:
                res['error'] = (f"nbdev's docs processing of {job['rel']} failed: {e}\n"
                                f"{''.join(traceback.format_exception_only(e.__cause__)) if e.__cause__ else ''}"
                                "Note: nbdev's `exec_show_docs` re-runs, in a fresh shell, only the cells that "
                                "import, export or call show_doc. A cell that mixes an import with other code is "
                                "re-run there without the names earlier plain cells defined: put imports in a cell "
                                "of their own (nbdev FAQ). `nbdev_docs` with quarto fails the same way.")
            res['proc_s'] = time.perf_counter() - t0
    except Exception as e:
        res['error'] = f"{job['rel']}: {type(e).__name__}: {e}\n{traceback.format_exc()}"
    return res


def _cuda_available() -> bool:
    try:
        out = subprocess.run([sys.executable, '-c', 'import torch; print(torch.cuda.is_available())'],
                             capture_output=True, text=True, timeout=300)
        return out.stdout.strip().endswith('True')
    except Exception: return False


def _needs_cuda_check(paths) -> bool:
    return any(re.search(r'^\s*#\s*\|\s*cuda\b', ''.join(c.get('source', '')), re.M)
               for p in paths for c in json.loads(Path(p).read_text(encoding='utf-8')).get('cells', []))


def showdoc_rerun_risks(path) -> list[str]:
    """Cells that nbdev's `exec_show_docs` will re-run in a fresh shell although they hold more than imports
    (nbdev's own "Found cells containing imports and other code" test). They break the docs build whenever
    they use a name an earlier plain cell defined. Returns one line per cell."""
    import ast, warnings
    from execnb.nbio import read_nb
    from nbdev.process import NBProcessor
    from nbdev.processors import _ast_contains, _want_doc
    nb = NBProcessor(nb=read_nb(path)).nb
    if not any(_want_doc(c) for c in nb.cells): return []  # exec_show_docs only runs where there are exports
    out = []
    for i, c in enumerate(nb.cells):
        if c.cell_type != 'code' or not c.source or 'nbdev_export' + '()' in c.source: continue
        if c.directives_.keys() & {'export', 'exports', 'exporti', 'exec_doc'}: continue
        if _first_arg(c.directives_, 'eval:') == 'false': continue
        with warnings.catch_warnings():
            warnings.simplefilter('ignore')
            try: trees = c.parsed_()
            except Exception: continue
        if trees and _ast_contains(trees, (ast.Import, ast.ImportFrom)) and _ast_contains(trees, (ast.Expr, ast.Assign)):
            first = next((l for l in c.source.splitlines() if not l.lstrip().startswith('#')), '')
            out.append(f'cell {i}: {first.strip()[:70]}')
    return out


def execute_all(notebooks: list[Path], nbs: Path, stage: Path, proc_dir: Path | None, args) -> list[dict]:
    import concurrent.futures as cf, multiprocessing as mp
    has_cuda = _cuda_available() if _needs_cuda_check(notebooks) else False
    cache_dir = BUILD / 'exec'
    jobs = []
    for p in notebooks:
        rel = p.relative_to(nbs)
        cache = cache_dir / rel
        prev = 0.0
        tfile = cache.with_suffix('.seconds')
        if tfile.exists():
            try: prev = float(tfile.read_text())
            except ValueError: pass
        jobs.append(dict(src=str(p), rel=rel.as_posix(), staged=str(stage / rel), cache=str(cache),
                         proc=str(proc_dir / rel) if proc_dir else None, skip_slow=args.skip_slow,
                         has_cuda=has_cuda, timeout=args.timeout, use_cache=args.cached, prev=prev))
    jobs.sort(key=lambda j: -j['prev'])  # longest first (timings of the previous build)
    print(f'Executing {len(jobs)} notebooks with {args.jobs} worker(s) '
          f'(kernel: {sys.executable}; cuda: {has_cuda}; slow cells: {"skipped" if args.skip_slow else "run"})',
          flush=True)
    for p in notebooks:  # warn before spending minutes executing
        risks = showdoc_rerun_risks(p)
        if risks:
            print(f'  warning: {p.relative_to(nbs)}: nbdev re-runs these cells (imports mixed with other code) '
                  'in a fresh shell to render show_doc; they fail there if they use names from other cells; '
                  'give the imports a cell of their own:\n' + '\n'.join(f'      {r}' for r in risks), flush=True)
    results = []
    ctx = mp.get_context('spawn')
    with cf.ProcessPoolExecutor(max_workers=max(1, args.jobs), mp_context=ctx, max_tasks_per_child=1) as ex:
        futs = {ex.submit(run_job, j): j for j in jobs}
        for f in cf.as_completed(futs):
            r = f.result()
            results.append(r)
            status = 'FAILED' if r['error'] else ('cached' if r['cached'] else 'ok')
            extra = f" (skipped: {', '.join(r['skipped'])})" if r['skipped'] else ''
            print(f"  {status:6s} {r['rel']:45s} execute {r['exec_s']:6.1f}s  nbdev {r['proc_s']:5.1f}s{extra}",
                  flush=True)
            if not r['error'] and not r['cached']:
                Path(futs[f]['cache']).with_suffix('.seconds').write_text(f"{r['exec_s']:.1f}")
    return results


# ----------------------------------------------------------------------------------------------------------
# 2b. Offline rendering: nbconvert + the su_site template
# ----------------------------------------------------------------------------------------------------------

def _cell_options_preprocessor():
    from nbconvert.preprocessors import Preprocessor

    class QuartoCellOptions(Preprocessor):
        "Apply the quarto cell options nbdev leaves in processed cells, and pull out the front matter."
        def preprocess(self, nb, resources):
            cells = []
            for i, cell in enumerate(nb.cells):
                if cell.cell_type == 'raw' and cell.source.lstrip().startswith('---') and 'frontmatter' not in resources:
                    from nbdev.frontmatter import _fm2dict
                    resources['frontmatter'] = _fm2dict(cell.source)
                    continue
                if cell.cell_type == 'markdown':
                    cell.source = pandoc_md_to_commonmark(cell.source)
                if cell.cell_type != 'code':
                    cells.append(cell); continue
                opts, cell.source = split_cell_options(cell.source)
                cell.source = cell.source.rstrip('\n')
                if opts.get('include') is False: continue
                site = {}
                if opts.get('echo') is False or not cell.source.strip():  # what nbconvert's templates read
                    cell.metadata['transient'] = {'remove_source': True}
                    cell.metadata['tags'] = list(cell.metadata.get('tags', [])) + ['no-input']
                if opts.get('output') is False: cell.outputs = []
                if opts.get('warning') is False:
                    cell.outputs = [o for o in cell.outputs if not (o.output_type == 'stream' and o.name == 'stderr')]
                fold = opts.get('code-fold')
                if fold not in (None, False, 'false'):
                    site['fold'] = 'show' if fold == 'show' else 'hide'
                    site['fold_summary'] = str(opts.get('code-summary') or 'Code')
                if opts.get('fig-cap'): site['fig_cap'] = str(opts['fig-cap'])
                if site: cell.metadata['su_site'] = site
                for o in cell.outputs:  # pandoc markdown in show_doc output -> commonmark
                    if 'data' in o and 'text/markdown' in o.data:
                        md = o.data['text/markdown']
                        o.data['text/markdown'] = pandoc_md_to_commonmark(''.join(md) if isinstance(md, list) else md)
                if cell.metadata.get('transient', {}).get('remove_source') and not cell.outputs: continue
                cells.append(cell)
            nb.cells = cells
            return nb, resources
    return QuartoCellOptions


def _site_exporter():
    from nbconvert.exporters import HTMLExporter
    from nbconvert.filters.markdown_mistune import IPythonRenderer, MarkdownWithMath
    from nbconvert.exporters import TemplateExporter
    from nbconvert.filters.highlight import Highlight2HTML
    from nbconvert.filters.widgetsdatatypefilter import WidgetsDataTypeFilter
    from traitlets.config import Config
    try: from jinja2 import pass_context as contextfilter
    except ImportError: from jinja2 import contextfilter

    class SiteExporter(HTMLExporter):
        "nbconvert's HTML exporter with the su_site page frame; headings get pandoc ids in a later pass."
        @contextfilter
        def markdown2html(self, context, source):
            cell = context.get('cell', {})
            renderer = IPythonRenderer(escape=False, attachments=cell.get('attachments', {}), embed_images=False,
                                       path=context.get('resources', {}).get('metadata', {}).get('path', ''),
                                       exclude_anchor_links=True)
            return MarkdownWithMath(renderer=renderer).render(pandoc_md_to_commonmark(source))

        def from_notebook_node(self, nb, resources=None, **kw):
            "HTMLExporter's, minus its BeautifulSoup pass (alt texts): `_postprocess` parses the page anyway."
            langinfo = nb.metadata.get('language_info', {})
            lexer = langinfo.get('pygments_lexer', langinfo.get('name', None))
            self.register_filter('highlight_code', Highlight2HTML(pygments_lexer=lexer, parent=self))
            resources = self._init_resources(resources)
            self.register_filter('filter_data_type', WidgetsDataTypeFilter(
                notebook_metadata=self._nb_metadata, parent=self, resources=resources))
            return TemplateExporter.from_notebook_node(self, nb, resources, **kw)

    c = Config()
    c.SiteExporter.extra_template_basedirs = [str(TEMPLATE_DIR)]
    c.SiteExporter.template_name = 'su_site'
    c.SiteExporter.exclude_input_prompt = True
    c.SiteExporter.exclude_output_prompt = True
    c.SiteExporter.exclude_anchor_links = True
    c.SiteExporter.preprocessors = [_cell_options_preprocessor()]
    c.CSSHTMLHeaderPreprocessor.enabled = False  # pygments CSS is written once to site_libs/pygments.css
    # Nothing may point at a CDN (the template does not use these, this is a second safety net).
    for k in ('require_js_url', 'mathjax_url', 'jquery_url', 'mermaid_js_url', 'mermaid_layout_elk_js_url',
              'jupyter_widgets_base_url'):
        setattr(c.SiteExporter, k, '')
    return SiteExporter(config=c)


class Page:
    def __init__(self, rel: str, kind: str, fm: dict, body):
        self.rel, self.kind, self.fm, self.body = rel, kind, fm, body
        self.url = page_url(rel, fm)  # nbdev's FrontmatterProc already set output-file = _nbpath2html(name)
        self.title = str(fm.get('title') or PurePosixPath(rel).stem)


def _md_inline(text: str) -> str:
    from nbconvert.filters.markdown_mistune import IPythonRenderer, MarkdownWithMath
    h = MarkdownWithMath(renderer=IPythonRenderer(escape=False, exclude_anchor_links=True)).render(
        pandoc_md_to_commonmark(str(text))).strip()
    return re.sub(r'^<p>(.*)</p>$', r'\1', h, flags=re.S)


def _sidebar_html(contents, pages: dict, current: Page) -> str:
    def items(cs):
        out = []
        for it in cs:
            if isinstance(it, str):
                p = pages.get(it)
                if not p: continue
                act = ' class="active" aria-current="page"' if p is current else ''
                out.append(f'<li><a href="{html.escape(rel_href(p.url, current.url))}"{act}>'
                           f'{_md_inline(p.title)}</a></li>')
            else:
                name = html.escape(str(it.get('section', '')))
                href = pages.get(it.get('href', ''))
                head = (f'<a href="{html.escape(rel_href(href.url, current.url))}">{name}</a>' if href else name)
                out.append(f'<li class="sidebar-section"><span class="sidebar-section-title">{head}</span>'
                           f'<ul>{items(it.get("contents", []))}</ul></li>')
        return ''.join(out)
    return f'<ul class="sidebar-list">{items(contents)}</ul>'


def _postprocess(html_text: str, page: Page, pages_by_src: dict, site_url: str) -> str:
    "Pandoc heading ids + anchors, a table of contents, site-relative links, scrollable tables."
    from bs4 import BeautifulSoup
    soup = BeautifulSoup(html_text, 'html.parser')
    main = soup.find(id='content')
    seen, toc = set(), []
    for h in main.select('.notebook-cells h1, .notebook-cells h2, .notebook-cells h3, .notebook-cells h4, '
                         '.notebook-cells h5, .notebook-cells h6'):
        for a in h.select('a.anchor-link'): a.decompose()
        base = pandoc_id(h.get_text(' ', strip=True))
        hid, k = base, 0
        while hid in seen: k += 1; hid = f'{base}-{k}'
        seen.add(hid); h['id'] = hid
        a = soup.new_tag('a', attrs={'class': 'anchor-link', 'href': f'#{hid}', 'aria-label': 'Link to this section'})
        a.string = '#'
        h.append(a)
        if h.name in ('h2', 'h3'):  # the heading's own markup (code, math), without its anchor
            inner = ''.join(str(c) for c in h.contents if not (getattr(c, 'name', None) == 'a' and 'anchor-link' in (c.get('class') or [])))
            toc.append((int(h.name[1]), hid, inner.strip()))
    nav = soup.find(id='TOC')
    if nav is not None and toc:
        parts, open_sub = ['<h2 id="toc-title">On this page</h2><ul>'], False
        for lvl, hid, text in toc:
            if lvl == 3 and not open_sub: parts.append('<ul>'); open_sub = True
            if lvl == 2 and open_sub: parts.append('</ul>'); open_sub = False
            parts.append(f'<li><a href="#{html.escape(hid)}">{text}</a></li>')
        parts.append('</ul>' * (2 if open_sub else 1))
        nav.append(BeautifulSoup(''.join(parts), 'html.parser'))
    elif nav is not None: nav['class'] = nav.get('class', []) + ['toc-empty']
    src_dir = posixpath.dirname(page.rel)
    for a in soup.find_all('a', href=True):
        href = a['href']
        if site_url and href.startswith(site_url + '/'):
            path, _, frag = href[len(site_url) + 1:].partition('#')
            a['href'] = rel_href(path or 'index.html', page.url) + (f'#{frag}' if frag else '')
            continue
        if re.match(r'^[a-zA-Z][\w+.-]*:|^#|^/', href): continue
        path, _, frag = href.partition('#')
        if path.endswith(PAGE_EXTS):
            tgt = posixpath.normpath(posixpath.join(src_dir, path))
            p = pages_by_src.get(tgt)
            url = p.url if p else page_url(tgt)
            a['href'] = rel_href(url, page.url) + (f'#{frag}' if frag else '')
    for t in main.find_all('table'):
        if t.parent is not None and 'table-wrap' not in (t.parent.get('class') or []):
            t.wrap(soup.new_tag('div', attrs={'class': 'table-wrap'}))
    for code in main.select('td code'):  # let long dotted names (su_notes.optim.adax) wrap at the dots
        text = code.get_text()
        if len(text) > 16 and len(code.contents) == 1 and re.search(r'[./]', text):
            code.clear()
            for k, part in enumerate(re.split(r'(?<=[./])', text)):
                if k: code.append(soup.new_tag('wbr'))
                code.append(part)
    for img in main.find_all('img'):
        if not img.get('alt'): img['alt'] = 'figure'
    return str(soup)


def _page_nb(page: Page):
    import nbformat
    if page.kind == 'ipynb': return page.body
    return nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell(page.body)],
                                    metadata={'language_info': {'name': 'python'}})


def render_site(stage: Path, proc_dir: Path, out: Path, cfg) -> list[Page]:
    import nbformat
    from nbdev.frontmatter import _fm2dict, _re_fm_md
    contents = derive_sidebar(stage)
    files = sidebar_files(contents)
    pages: dict[str, Page] = {}
    for rel in files:
        suffix = PurePosixPath(rel).suffix
        if suffix == '.ipynb':
            pnb = proc_dir / rel
            if not pnb.exists(): raise FileNotFoundError(f'{rel}: no processed notebook at {pnb}')
            nb = nbformat.read(pnb, as_version=4)
            pages[rel] = Page(rel, 'ipynb', notebook_frontmatter(nb), nb)
        elif suffix in ('.md', '.qmd'):
            text = (stage / rel).read_text(encoding='utf-8')
            fm = _fm2dict(text, nb=False)
            body = _re_fm_md.sub('', text.lstrip(), count=1) if fm else text
            pages[rel] = Page(rel, suffix[1:], fm, body)
    ordered = [pages[f] for f in files if f in pages]
    nbs_name = Path(cfg.nbs_path).name
    exporter = _site_exporter()
    site_url = f"{cfg.get('doc_host', '').rstrip('/')}{cfg.get('doc_baseurl', '')}".rstrip('/')
    site_title = cfg.get('title', cfg.get('lib_name', 'docs'))
    import nbdev, nbconvert
    for i, page in enumerate(ordered):
        fm = page.fm
        prev_p = ordered[i - 1] if i > 0 else None
        next_p = ordered[i + 1] if i + 1 < len(ordered) else None
        nb = _page_nb(page)
        resources = {'metadata': {'path': str(stage / posixpath.dirname(page.rel)), 'name': page.title},
                     'site': dict(
            root=root_prefix(page.url), title=site_title, page_title=f'{page.title} – {site_title}'
            if page.url != 'index.html' else f'{site_title} – {page.title}' if page.title != site_title else site_title,
            title_html=_md_inline(page.title), description=fm.get('description') or '',
            description_text=re.sub(r'\[([^\]]*)\]\([^)]*\)', r'\1', str(fm.get('description') or '')),
            source=fm.get('source'), original_title=fm.get('original_title'), date=fm.get('date'),
            author=fm.get('author'), repo_url=cfg.get('git_url', ''),
            issue_url=(cfg.get('git_url', '').rstrip('/') + '/issues/new') if cfg.get('git_url') else '',
            sidebar_html=_sidebar_html(contents, pages, page), page_src=f"{nbs_name}/{page.rel}",
            prev=dict(href=rel_href(prev_p.url, page.url), title=_md_inline(prev_p.title)) if prev_p else None,
            next=dict(href=rel_href(next_p.url, page.url), title=_md_inline(next_p.title)) if next_p else None,
            generator=f'nbdev {nbdev.__version__}, nbconvert {nbconvert.__version__} (tools/build_docs.py)',
            mathjax_config=MATHJAX_CONFIG)}
        body, _ = exporter.from_notebook_node(nb, resources=resources)
        body = _postprocess(body, page, pages, site_url)
        dst = out / page.url
        dst.parent.mkdir(parents=True, exist_ok=True)
        dst.write_text(body, encoding='utf-8')
    return ordered


def copy_assets(stage: Path, out: Path):
    import jupyter_server_mathjax
    from pygments.formatters import HtmlFormatter
    libs = out / 'site_libs'
    libs.mkdir(parents=True, exist_ok=True)
    mj = Path(jupyter_server_mathjax.__file__).parent / 'static'
    shutil.copytree(mj, libs / 'mathjax', ignore=shutil.ignore_patterns('SVG', '__pycache__'))
    for f in (TEMPLATE_DIR / 'su_site' / 'static').iterdir():
        if f.is_file(): shutil.copy2(f, libs / f.name)
    (libs / 'pygments.css').write_text(HtmlFormatter(style='default').get_style_defs('.highlight'))
    # Resources next to the pages (styles.css, images referenced from markdown), as quarto copies them.
    for p in stage.rglob('*'):
        if not p.is_file() or p.suffix.lower() not in ('.css', '.png', '.jpg', '.jpeg', '.gif', '.svg', '.webp', '.js'):
            continue
        rel = p.relative_to(stage)
        if any(part.startswith(('_', '.')) for part in rel.parts): continue
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(p, out / rel)
    (out / '.nojekyll').touch()


# ----------------------------------------------------------------------------------------------------------
# 3. README
# ----------------------------------------------------------------------------------------------------------

def readme_markdown(nb_path: Path, cfg) -> tuple[str, dict]:
    """README.md text from the notebook at `nb_path` (nbs/index.ipynb): nbdev's processing, the quarto cell
    options applied, then nbconvert's MarkdownExporter. Links to other pages become repo paths (nbs/...)."""
    import nbformat
    from execnb.nbio import read_nb, nb2str
    from nbconvert.exporters import MarkdownExporter
    from nbdev.processors import FilterDefaults
    from traitlets.config import Config
    nb = read_nb(nb_path)
    os.environ['IN_TEST'] = '1'
    try: FilterDefaults()(nb)
    finally: os.environ.pop('IN_TEST', None)
    nb = nbformat.reads(nb2str(nb), as_version=4)
    nbs_rel = posixpath.relpath(nb_path.parent.resolve().as_posix(), Path(cfg.config_path).resolve().as_posix())

    def fix_links(md):
        def f(m):
            tgt = m.group(2)
            if re.match(r'^[a-zA-Z][\w+.-]*:|^#|^/', tgt): return m.group(0)
            return f'{m.group(1)}({posixpath.normpath(posixpath.join(nbs_rel, tgt))})'
        return re.sub(r'(\]\s*)\(([^)\s]+)\)', f, md)
    c = Config()
    c.MarkdownExporter.exclude_input_prompt = True
    c.MarkdownExporter.exclude_output_prompt = True
    c.MarkdownExporter.preprocessors = [_cell_options_preprocessor()]
    body, res = MarkdownExporter(config=c).from_notebook_node(nb, resources={'output_files_dir': 'README_files'})
    fm = res.get('frontmatter', {})
    head = f"# {fm.get('title', cfg.get('lib_name'))}\n\n"
    body = body.strip('\n')
    warn = '<!-- WARNING: THIS FILE WAS AUTOGENERATED! DO NOT EDIT! -->'
    if body.startswith(warn): body = body[len(warn):].lstrip('\n')
    desc = f"> {fm['description']}\n\n" if fm.get('description') else ''
    text = head + warn + '\n\n' + desc + body + '\n'
    text = re.sub(r'\n{3,}', '\n\n', fix_links(text))
    return text, res.get('outputs', {})


def build_readme(quarto: bool, cfg) -> Path:
    readme = Path(cfg.config_path) / 'README.md'
    nbs = Path(cfg.nbs_path)
    if quarto:
        from nbdev.quarto import nbdev_readme
        nbdev_readme.__wrapped__()
        return readme
    text, outputs = readme_markdown(nbs / cfg.get('readme_nb', 'index.ipynb'), cfg)
    for name, data in outputs.items():
        p = readme.parent / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
    if not readme.exists() or readme.read_text(encoding='utf-8') != text:
        readme.write_text(text, encoding='utf-8')
        print(f'wrote {readme.relative_to(cfg.config_path)}')
    else: print(f'{readme.relative_to(cfg.config_path)} unchanged')
    return readme


# ----------------------------------------------------------------------------------------------------------
# main
# ----------------------------------------------------------------------------------------------------------

def _stage_tree(nbs: Path, stage: Path):
    if stage.exists(): shutil.rmtree(stage)
    pat = shutil.ignore_patterns('*.ipynb', '.ipynb_checkpoints', '__pycache__', 'sidebar.yml', '.*')

    def ignore(d, names):  # notebooks come from the execution step; skip sockets and other non-files
        return set(pat(d, names)) | {n for n in names if not (os.path.isfile(os.path.join(d, n))
                                                               or os.path.isdir(os.path.join(d, n)))}
    shutil.copytree(nbs, stage, ignore=ignore)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--readme-only', action='store_true', help='only regenerate README.md from nbs/index.ipynb')
    ap.add_argument('--skip-slow', action='store_true', help='do not run `#| slow` cells (quick iteration)')
    ap.add_argument('--jobs', type=int, default=int(os.environ.get('NPROC', 2)), help='notebooks executed in parallel')
    ap.add_argument('--timeout', type=int, default=1800, help='per-cell timeout in seconds')
    ap.add_argument('--cached', action='store_true',
                    help='reuse the last execution (_build/exec) of every notebook whose file and flags are unchanged; '
                         'su_notes/ is NOT compared: for iterating on pages and the site, never for publishing')
    ap.add_argument('--offline', action='store_true', help='use the offline renderer even if quarto is on PATH')
    ap.add_argument('--nbs', type=Path, default=None,
                    help="notebook folder to build (default: settings.ini's nbs_path); for trying a stand-in tree")
    args = ap.parse_args(argv)

    os.chdir(ROOT)
    from nbdev.config import get_config
    cfg = get_config()
    quarto = bool(shutil.which('quarto')) and not args.offline
    if args.readme_only:
        build_readme(quarto, cfg)
        return 0

    t_start = time.perf_counter()
    nbs, out = (args.nbs.resolve() if args.nbs else Path(cfg.nbs_path)), Path(cfg.doc_path)
    # Same environment for nbdev's processing workers (exec_show_docs' shell) as for the kernels.
    os.environ.update(kernel_env())
    os.environ.pop('SU_NOTES_PROGRESS', None)
    from nbdev.doclinks import nbglob
    notebooks = [Path(p) for p in nbglob(nbs)]
    stage = BUILD / 'nbs'
    _stage_tree(nbs, stage)
    # nbdev's cache of processed notebooks: cleared so pages of deleted/renamed notebooks do not linger
    # (quarto renders every file in it).
    proc_cache = Path(cfg.config_path) / '_proc'
    if proc_cache.exists(): shutil.rmtree(proc_cache)
    proc_dir = None if quarto else proc_cache
    results = execute_all(notebooks, nbs, stage, proc_dir, args)
    failed = [r for r in results if r['error']]
    if failed:
        print(f'\nmake docs FAILED: {len(failed)} of {len(results)} notebook(s):', file=sys.stderr)
        for r in failed: print(f"\n=== {nbs.name}/{r['rel']} ===\n{r['error']}", file=sys.stderr)
        return 1
    t_exec = time.perf_counter()

    if quarto:
        from nbdev.quarto import nbdev_docs
        for f in ('nbdev.yml', '_quarto.yml'):  # nbdev_docs refreshes nbs/nbdev.yml; the staged copy is read
            if (nbs / f).exists(): shutil.copy2(nbs / f, stage / f)
        nbdev_docs.__wrapped__(path=str(stage), n_workers=args.jobs, file_glob=None, file_re=DOC_FILE_RE)
        print(f'quarto site written to {out} in {time.perf_counter() - t_start:.0f}s')
        return 0

    tmp_out = BUILD / 'site'
    if tmp_out.exists(): shutil.rmtree(tmp_out)
    pages = render_site(stage, proc_dir, tmp_out, cfg)
    copy_assets(stage, tmp_out)
    if out.exists(): shutil.rmtree(out)
    shutil.move(str(tmp_out), str(out))
    t_render = time.perf_counter()
    build_readme(False, cfg)
    print(f'\n{len(pages)} pages written to {out}/ in {t_render - t_start:.0f}s '
          f'(execute + nbdev processing {t_exec - t_start:.0f}s, render {t_render - t_exec:.1f}s)')
    for p in pages: print(f'  {out.name}/{p.url:32s} <- {nbs.name}/{p.rel}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
