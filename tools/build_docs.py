#!/usr/bin/env python
"""Build the site into `_docs/` (`make docs`) and README.md (`--readme-only`) from the notebooks.

1. nbdev's processors (front matter, show_doc cells, doc links) make each notebook a MyST-NB source
   in `_build/site_src/`, named by its page URL (`optim/10_adax.ipynb` -> `optim/adax.ipynb`). `#|`
   lines become tags: hidden cells `remove-cell` (they still run), `echo: false` `remove-input`,
   `output: false` `remove-output`, `#| slow` (`--skip-slow`), `#| cuda` (no GPU) `skip-execution`;
   `fig-cap`/`fig-alt` become MyST-NB figure metadata.
2. jupyter-cache executes them, `--jobs` at a time, into a cache keyed on `su_notes/` and the flags.
3. Their claim records give the Claims page, `claims.json`, the index's Claims column and each
   post's provenance line. 4. sphinx-build -W renders the pages, with the outputs from the cache."""

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BUILD = ROOT / '_build'
SRC = BUILD / 'site_src'
sys.path.insert(0, str(ROOT / 'docs' / '_ext'))
VERDICTS = ('holds', 'caveat', 'does not hold', 'untested')  # = su_notes.core.VERDICTS
KINDS = ('post', 'check')
NOTE = {
    'slow': '`#| slow` cell: skipped in this build (`--skip-slow`); `make docs` runs it.',
    'cuda': '`#| cuda` cell: not run in this build (no GPU where these pages were built).',
}


def page_url(rel: str) -> str:
    "The page URL of a file of nbs/ (nbdev's: number prefix dropped, lower case)."
    from nbdev.doclinks import _nbpath2html

    return _nbpath2html(Path(rel)).as_posix() if rel.endswith('.ipynb') else rel[:-3] + '.html'


def source_name(rel: str) -> str:
    return page_url(rel)[:-5] + rel[rel.rindex('.') :]


def says(n: int, verdict: str) -> str:
    "`1 holds`, `2 hold`, `1 does not hold`, `2 do not hold`, `1 with a caveat`, `3 untested`."
    one = n == 1
    return {
        'holds': f'{n} hold{"s" * one}',
        'does not hold': f'{n} do{"es" * one} not hold',
        'caveat': f'{n} with a caveat',
    }.get(verdict, f'{n} untested')


def plural(n: int, word: str) -> str:
    return f'{n} {word}{"s" * (n != 1)}'


def counts(recs: list, not_run=None) -> dict:
    "A post's (or all posts') counts: post claims by verdict, checks, records in cells not run."
    posts = [r for r in recs if r.get('kind', 'post') == 'post']
    return {
        'post': len(posts),
        **{v: sum(r['verdict'] == v for r in posts) for v in VERDICTS},
        'check': len(recs) - len(posts),
        'not_run': dict(not_run or dict.fromkeys(KINDS, 0)),
    }


def transform(path: Path, rel: str, docs: dict, site: str, skip_slow: bool, has_cuda: bool):
    "The MyST-NB source of one notebook, not executed (see the module docstring)."
    import nbformat.v4 as v4
    from execnb.nbio import read_nb
    from nbdev.frontmatter import FrontmatterProc
    from nbdev.process import NBProcessor
    from nbdev.processors import add_links, add_show_docs, hide_line, rm_header_dash
    from su_build import relink

    nb = read_nb(path)
    procs = [FrontmatterProc, add_show_docs, hide_line, rm_header_dash, add_links]
    NBProcessor(nb=nb, procs=procs, process=True)
    fm = json.loads(json.dumps(nb.get('frontmatter_', {}), default=str))  # YAML dates
    cells = [v4.new_markdown_cell('')]  # title block: `write_pages`
    for c in [c for c in nb.cells if c.cell_type != 'raw']:
        if c.cell_type == 'markdown':
            cells.append(v4.new_markdown_cell(relink(c.source, source_name(rel), docs, site)))
            continue
        d = {
            k.rstrip(':'): ' '.join(v).strip('"\'') for k, v in (c.get('directives_') or {}).items()
        }
        why = (
            'slow' if 'slow' in d and skip_slow else 'cuda' if 'cuda' in d and not has_cuda else ''
        )
        hide = (
            d.keys() & {'hide', 'export', 'exporti', 'default_exp'} or d.get('include') == 'false'
        )
        tags = {
            'remove-cell': hide or 'nbdev_export()' in c.source,
            'skip-execution': why or d.get('eval') == 'false' or 'nbdev_export()' in c.source,
            'remove-output': d.get('output') == 'false',
            'remove-input': d.get('echo') == 'false' or c.get('has_sd') or not c.source.strip(),
        }
        meta = {'tags': [t for t, on in tags.items() if on], 'su_skipped': why}
        fig = {'figure': ('caption', d.get('fig-cap')), 'image': ('alt', d.get('fig-alt'))}
        meta['mystnb'] = {k: dict([kv]) for k, kv in fig.items() if kv[1]}
        src = re.sub(r'\A(\s*#\s*\|.*\n?)*', '', c.source)  # quarto's options (nbdev keeps them)
        cells.append(v4.new_code_cell(src, metadata=meta))
        if why and not tags['remove-cell']:
            cells.append(v4.new_markdown_cell(f'{{.cell-note .cell-note-{why}}}\n{NOTE[why]}'))
    kernel = {'name': 'python3', 'display_name': 'Python 3', 'language': 'python'}
    return v4.new_notebook(cells=cells, metadata={'kernelspec': kernel, 'su_fm': fm})


def title_block(fm: dict, prov: str = '') -> str:
    "Title, summary and, for a post, its source, date, papers and the provenance of its records."
    src = fm.get('source')
    meta = [f'- **Post:** [{fm.get("original_title") or src}]({src})'] if src else []
    meta += [f'- **{k}:** {fm[f]}' for k, f in (('By', 'date'), ('Papers', 'papers')) if f in fm]
    meta += [f'- [{prov}]{{.provenance}}'] * bool(prov)
    lead = ['{.post-lead}', str(fm['description']), ''] * ('description' in fm)
    return '\n'.join(
        [f'# {fm["title"]}', '', *lead, *[':::{container} post-meta', *meta, ':::'] * bool(meta)]
    )


def records(nb, doc: str):
    "An executed page's claim records (labelled as their boxes) and the records of cells not run."
    from su_build import CLAIM_MIME

    recs, not_run, section = [], dict.fromkeys(KINDS, 0), ''
    for c in nb.cells:
        outs = [o.get('data', {}) for o in c.get('outputs', [])]
        for t in (
            [c.source] if c.cell_type == 'markdown' else [o.get('text/markdown', '') for o in outs]
        ):
            section = ([section] + re.findall(r'^#{2,6}\s+(.+?)\s*$', t, re.M))[-1]
        if c.cell_type != 'code' or {'remove-cell', 'remove-output'} & set(c.metadata.tags):
            continue
        for call in re.split(r'\brecord_claim\(', c.source)[1:] if c.metadata.su_skipped else []:
            not_run['check' if re.match(r'[^\n]*kind\s*=\s*["\']check', call) else 'post'] += 1
        for o in [o[CLAIM_MIME] for o in outs if CLAIM_MIME in o]:
            label = f'claim-{doc.rsplit(".", 1)[0].replace("/", "-")}-{len(recs) + 1}'
            o = json.loads(o) if isinstance(o, str) else dict(o)
            recs.append(dict(o, page=doc, section=section, label=label))
    return recs, not_run


def provenance(recs: list, not_run: dict) -> str:
    "Where a page's records were measured: devices, torch and Python versions, dates, counts."
    ps = [r['provenance'] for r in recs if r.get('provenance')]
    if not ps:
        return ''
    vals = lambda k: sorted({str(p[k]) for p in ps if p.get(k)})
    devs = sorted({d.split(':')[0].upper() for d in vals('device')}, key=lambda d: (d != 'CPU', d))
    dates, c = vals('date'), counts(recs)
    s = f'Checked on {" and ".join(devs)}, torch {" and ".join(vals("torch"))}, Python '
    s += f'{" and ".join(vals("python"))}, {" to ".join(dict.fromkeys([dates[0], dates[-1]]))} ('
    s += f'{plural(c["post"], "claim")}, {plural(c["check"], "check")}'
    return (
        s
        + f'; {sum(not_run.values())} more in cells this build did not run' * any(not_run.values())
        + ').'
    )


def claims_page(posts: list) -> str:
    "The Claims page: summary by post, claims that do not hold, caveats and untested, all by post."
    from su_build import MARKS

    tot = counts([r for p in posts for r in p['claims']])
    head = '| Post | ' + ' | '.join(VERDICTS) + ' | checks | not run | records |'
    out = [
        '# Claims',
        '',
        '{.post-lead}',
        INTRO,
        '',
        f'{plural(tot["post"], "claim")} across '
        f'{plural(len(posts), "post")}: '
        + ', '.join(says(tot[v], v) for v in VERDICTS if tot[v])
        + f'; {plural(tot["check"], "check")}. The same ledger, machine-readable, with each run\'s '
        'device, versions and date: <a class="reference external" href="claims.json">claims.json'
        '</a>.',
        '',
        '<div id="claim-filter"></div>',
        '',
        '## Summary by post',
        '',
        head,
        '|---' * 8 + '|',
    ]

    def rec(r, p):
        k, v = r.get('kind', 'post'), r['verdict']
        tol = f' *Tolerance:* {r["tolerance"]}.' * bool(r.get('tolerance'))
        return (
            f'<div class="record" data-verdict="{v}" data-kind="{k}">\n\n**{MARKS[v]} {v}** · '
            f'{"claim" if k == "post" else "check"} of [{p["title"]}]({p["doc"]}), '
            f'{{ref}}`§ <{r["label"]}>` {r["section"]}: {r["claim"]}\n\n*Measured:* '
            f'{r["measured"]}{tol}\n\n</div>\n'
        )

    for p in posts:
        c = counts(p['claims'], p['not_run'])
        nr = f'{c["not_run"]["post"]}/{c["not_run"]["check"]}'
        cells = [f'[{p["title"]}]({p["doc"]})', *(str(c[v]) for v in VERDICTS), str(c['check']), nr]
        out.append(f'| {" | ".join(cells)} | {{ref}}`records <{p["id"]}>` |')
    sel = {
        '## Claims that do not hold': ('does not hold',),
        '## Caveats and untested': VERDICTS[1::2],
    }
    for h, vs in sel.items():
        sel = [(r, p) for p in posts for r in p['claims'] if r['verdict'] in vs]
        sel = [rec(r, p) for r, p in sel if r.get('kind', 'post') == 'post']
        out += ['', h, '', *(sel or ['None.'])]
    out += ['', '## All records by post', '']
    for p in posts:
        src = f'Post: [{p["original_title"]}]({p["source"]}) · page: [{p["title"]}]({p["doc"]})'
        out += [f'({p["id"]})=', f'### {p["title"]}', '', src, '']
        out += [rec(r, p) for r in p['claims']] or ['No claims recorded yet.', '']
    return '\n'.join(out)


INTRO = (
    "Each record comes from a `record_claim` call at the end of a check cell, collected as this "
    "site was built. A **claim** is what a post (or its paper) says; its verdict covers only the "
    "setting the notebook measured: *holds*, *caveat* (only under a condition the post does not "
    "state), *does not hold*, or *untested* (the notebook cannot test it as stated). A **check** "
    "says that this project's code agrees with a peer library or a closed form, at a tolerance."
)


def ledger(posts: list, prefix: str) -> dict:
    "`claims.json`: the counts, one entry per post and one record per `record_claim` output."
    import datetime

    from docutils.nodes import make_id

    recs, entries, keys = [], [], ('device', 'torch', 'python', 'date')
    for p in posts:
        m = re.search(r'/archives/(\d+)', p['source'])
        e = dict(
            post=m[1] if m else p['source'],
            source=p['source'],
            title=p['title'],
            notebook=f'{prefix}/{p["rel"]}',
            page=p['doc'].rsplit('.', 1)[0] + '.html',
        )
        entries.append(dict(e, counts=counts(p['claims'], p['not_run'])))
        for r in p['claims']:
            prov = r.get('provenance') or {}
            recs.append(
                dict(
                    e,
                    anchor=make_id(r['label']),
                    section=r['section'],
                    kind=r.get('kind', 'post'),
                    claim=r['claim'],
                    measured=r['measured'],
                    values=dict(r.get('values') or {}),
                    tolerance=r.get('tolerance') or None,
                    verdict=r['verdict'],
                    seeds=list(r.get('seeds') or []),
                    **{k: prov.get(k) for k in keys},
                )
            )
    nr = {k: sum(p['not_run'][k] for p in posts) for k in KINDS}
    now = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds')
    return dict(
        format='su_notes claims ledger',
        version=1,
        built=now,
        counts=counts([r for p in posts for r in p['claims']], nr),
        posts=entries,
        records=recs,
    )


def execute(paths: list, cache_dir: Path, jobs: int, timeout: int):
    "Execute the sources not cached yet, `jobs` at a time; stop at the first failing notebook."
    import multiprocessing

    from jupyter_cache import get_cache
    from jupyter_cache.executors.basic import ExecutionWorkerLocalMProc, ProcessData

    cache = get_cache(cache_dir)
    for r in cache.list_project_records():
        cache.remove_nb_from_project(r.uri)
    todo = [cache.add_nb_to_project(str(p)) for p in paths]
    todo = [ProcessData(r.pk, r.uri, cache, timeout, False) for r in cache.list_unexecuted()]
    print(f'Executing {len(todo)} of {len(paths)} notebooks ({jobs} at a time)', flush=True)
    with multiprocessing.Pool(jobs) as pool:
        for code, uri in pool.imap_unordered(ExecutionWorkerLocalMProc(), todo, chunksize=1):
            print(f'  {"ok" if code == 0 else "FAILED"} {Path(uri).relative_to(SRC)}', flush=True)
            if code:
                pool.terminate()
                return cache, failure(uri, cache.get_project_record(uri).traceback or '')
    return cache, None


def failure(uri: str, tb: str) -> str:
    "Which notebook and cell failed, and why."
    import nbformat

    tb = re.sub(r'\x1b\[[0-9;]*[A-Za-z]', '', tb)
    cells = [c for c in nbformat.read(uri, as_version=4).cells if c.cell_type == 'code']
    i = next((i for i, c in enumerate(cells) if c.source.strip() and c.source.strip() in tb), None)
    where = f'code cell {i} (id {cells[i].id})' if i is not None else 'a cell'
    return f'executing {uri} failed at {where}:\n{tb}'


def readme(cfg) -> int:
    "README.md from the index notebook, not executed: nbdev's processing, links to the repository."
    from execnb.nbio import read_nb
    from nbdev.frontmatter import FrontmatterProc
    from nbdev.process import NBProcessor
    from nbdev.processors import hide_, rm_export
    from su_build import _re_link

    nbs, site = Path(cfg.nbs_path), f'{cfg.doc_host}{cfg.doc_baseurl}'
    nb = read_nb(nbs / cfg.readme_nb)
    NBProcessor(nb=nb, procs=[FrontmatterProc, rm_export, hide_], process=True)

    def fix(m):
        path, hsh, frag = m[2].partition('#')
        if re.match(r'[a-zA-Z][\w+.-]*:|[#/]', m[2]):
            return m[0]
        to = (
            f'{nbs.name}/{m[2]}' if (nbs / path).exists() else f'{site}/{page_url(path)}{hsh}{frag}'
        )
        return f'[{m[1]}]({to})'

    fm, warn = nb.frontmatter_, '<!-- WARNING: THIS FILE WAS AUTOGENERATED! DO NOT EDIT! -->'
    parts = [f'# {fm["title"]}', warn, f'> {fm["description"]}']
    for c in nb.cells:
        if c.cell_type == 'markdown':
            parts.append(_re_link.sub(fix, c.source))
        elif c.cell_type == 'code' and c.source.strip() and c.directives_.get('echo:') != ['false']:
            parts.append(f'```\n{c.source.strip()}\n```')
    text = re.sub(r'\n{3,}', '\n\n', '\n\n'.join(p for p in parts if p.strip())) + '\n'
    Path(cfg.config_path, 'README.md').write_text(text, encoding='utf-8')
    return 0


def run_sphinx(src: Path, out: Path, jobs: int, cache_dir: Path) -> int:
    "sphinx-build with docs/conf.py; warnings (broken links included) are errors."
    opts = ['-W', '--keep-going', '-q', '-j', str(jobs), '-c', str(ROOT / 'docs')]
    opts += ['-d', str(BUILD / 'doctrees'), '-D', f'nb_execution_cache_path={cache_dir}']
    return subprocess.run([sys.executable, '-m', 'sphinx', *opts, str(src), str(out)]).returncode


def write_pages(nbs: Path, rels: list, args, site: str) -> tuple:
    "Every page's MyST-NB source in SRC; returns (docs map, executed-notebook cache dir)."
    import nbformat
    from nbdev.frontmatter import _fm2dict, _re_fm_md
    from su_build import relink

    docs = {r: source_name(r) for r in rels} | {page_url(r): source_name(r) for r in rels}
    text = ''.join((nbs / r).read_text(encoding='utf-8') for r in rels if r.endswith('.ipynb'))
    cuda = re.search(r'"#\|\s*cuda\b', text) and not args.skip_cuda
    test = 'import torch; print(torch.cuda.is_available())'
    cuda = (
        cuda
        and 'True'
        in subprocess.run([sys.executable, '-c', test], capture_output=True).stdout.decode()
    )
    shutil.rmtree(SRC, ignore_errors=True)
    for r in rels:
        (SRC / docs[r]).parent.mkdir(parents=True, exist_ok=True)
        if r.endswith('.md'):
            md = (nbs / r).read_text(encoding='utf-8')
            body = relink(_re_fm_md.sub('', md, count=1), docs[r], docs, site)
            (SRC / docs[r]).write_text(title_block(_fm2dict(md, nb=False)) + '\n\n' + body)
        else:
            nbformat.write(transform(nbs / r, r, docs, site, args.skip_slow, cuda), SRC / docs[r])
    lib = sorted(ROOT.glob('su_notes/**/*.py'))
    key = hashlib.sha256(b''.join(p.read_bytes() for p in lib)).hexdigest()[:12]
    flags = f'{"quick" if args.skip_slow else "full"}-{"cuda" if cuda else "cpu"}'
    for old in (BUILD / 'jupyter_cache').glob(f'*-{flags}'):  # earlier su_notes/, same flags
        if old.name != f'{key}-{flags}':
            shutil.rmtree(old)
    return docs, BUILD / 'jupyter_cache' / f'{key}-{flags}'


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--readme-only', action='store_true', help='only write README.md')
    ap.add_argument('--skip-slow', action='store_true', help='do not run `#| slow` cells')
    ap.add_argument('--skip-cuda', action='store_true', help='do not run `#| cuda` cells')
    ap.add_argument('--jobs', type=int, default=int(os.environ.get('NPROC', 2)))
    ap.add_argument('--timeout', type=int, default=1800, help='per-cell timeout in seconds')
    ap.add_argument('--nbs', type=Path, help='notebook folder (default: nbs_path of settings.ini)')
    args = ap.parse_args(argv)
    os.chdir(ROOT)
    from nbdev.config import get_config
    from nbdev.doclinks import nbglob

    cfg = get_config()
    if args.readme_only:
        return readme(cfg)
    nbs = (args.nbs or cfg.nbs_path).resolve()
    rels = sorted(Path(p).relative_to(nbs).as_posix() for p in nbglob(nbs))
    rels += sorted(p.relative_to(nbs).as_posix() for p in nbs.glob('*.md'))
    rels.sort(key=lambda r: ('/' in r, r))
    env = dict(SU_NOTES_PROGRESS='0', OMP_NUM_THREADS='1', PYDEVD_DISABLE_FILE_VALIDATION='1')
    os.environ.update(env, MPLBACKEND='module://matplotlib_inline.backend_inline')
    docs, cache_dir = write_pages(nbs, rels, args, f'{cfg.doc_host}{cfg.doc_baseurl}')
    cache, err = execute(
        [SRC / docs[r] for r in rels if r.endswith('.ipynb')], cache_dir, args.jobs, args.timeout
    )
    if err:
        print(f'\nmake docs FAILED: {err}', file=sys.stderr)
        return 1
    posts = finish_pages(rels, docs, cache, nbs)
    out = BUILD / 'html'
    shutil.rmtree(out, ignore_errors=True)
    if run_sphinx(SRC, out, args.jobs, cache_dir):
        print(
            '\nmake docs FAILED: sphinx-build reported warnings or errors (above)', file=sys.stderr
        )
        return 1
    shutil.copy2(BUILD / 'claims.json', out / 'claims.json')
    shutil.rmtree(cfg.doc_path, ignore_errors=True)
    shutil.move(out, cfg.doc_path)
    (cfg.doc_path / '.nojekyll').touch()
    print(f'{len(rels) + 1} pages, {len(posts)} posts written to {cfg.doc_path}')
    return readme(cfg)


def finish_pages(rels: list, docs: dict, cache, nbs: Path) -> list:
    "Title blocks with provenance, the index's Claims column and toctrees, Claims page, ledger."
    import nbformat

    posts, pages = [], {}
    for r in [r for r in rels if r.endswith('.ipynb')]:
        pages[r] = nb = nbformat.read(SRC / docs[r], as_version=4)
        recs, nr = records(cache.merge_match_into_notebook(nb)[1], docs[r])
        fm = nb.metadata.su_fm
        if 'source' in fm:
            pid = 'post-' + docs[r].rsplit('.', 1)[0].replace('/', '-')
            posts.append(
                dict(
                    rel=r,
                    doc=docs[r],
                    title=fm['title'],
                    source=fm['source'],
                    id=pid,
                    original_title=fm.get('original_title', fm['source']),
                    claims=recs,
                    not_run=nr,
                )
            )
        nb.cells[0].source = title_block(fm, provenance(recs, nr) if 'source' in fm else '')
    cat = {p['doc']: p for p in posts}
    for c in pages.get('index.ipynb', nbformat.v4.new_notebook()).cells:
        if c.cell_type == 'markdown':
            c.source = catalog(c.source, cat)
    if 'index.ipynb' in pages:
        pages['index.ipynb'].cells.append(nbformat.v4.new_markdown_cell(toctrees(rels, docs)))
    for r, nb in pages.items():
        nbformat.write(nb, SRC / docs[r])
    (SRC / 'claims.md').write_text(claims_page(posts), encoding='utf-8')
    prefix = os.path.relpath(nbs, ROOT) if nbs.is_relative_to(ROOT) else nbs.as_posix()
    led = json.dumps(ledger(posts, prefix), ensure_ascii=False, indent=1, default=str)
    (BUILD / 'claims.json').write_text(led + '\n', encoding='utf-8')
    return posts


def catalog(md: str, posts: dict) -> str:
    "The index catalog (`| # | Post |` table) with a Claims column: post claims, the bad news."
    out, table = [], False
    for line in md.split('\n') + ['']:
        if line.startswith('| # | Post |'):
            table, line = True, ':::{container} catalog\n' + line + ' Claims |'
        elif table and re.fullmatch(r'\|[-|: ]+\|', line):
            line += '---|'
        elif table and line.startswith('|'):
            m = re.search(r'\]\(([^()\s]+\.ipynb)\)', line)
            p = posts.get(m[1]) if m else None
            if p:
                c = counts(p['claims'], p['not_run'])
                nr = f' (+{c["not_run"]["post"]} in cells not run)' * bool(c['not_run']['post'])
                text = (
                    f'{plural(c["post"], "claim")}: {says(c["does not hold"], "does not hold")}, '
                )
                line += f' {{ref}}`{text}{c["untested"]} untested{nr} <{p["id"]}>` |'
            else:
                line += ' — |'
        elif table:
            table, line = False, ':::\n' + line
        out.append(line)
    return '\n'.join(out).removesuffix('\n')


def toctrees(rels: list, docs: dict) -> str:
    "Hidden toctrees as nbdev's sidebar: top-level pages and the Claims page, then one per folder."
    top = [docs[r].rsplit('.', 1)[0] for r in rels if '/' not in r and r != 'index.ipynb']
    groups = {'': top + ['claims']}
    for r in [r for r in rels if '/' in r]:
        groups.setdefault(r.split('/')[0], []).append(docs[r].rsplit('.', 1)[0])
    cap = lambda g: f':caption: {g}\n' if g else ''
    return '\n\n'.join(
        f'```{{toctree}}\n:hidden:\n{cap(g)}\n' + '\n'.join(d) + '\n```' for g, d in groups.items()
    )


if __name__ == '__main__':
    sys.exit(main())
