#!/usr/bin/env python
"""Build the site into `_docs/` (`make docs`) and README.md (`--readme-only`) from the notebooks.

1. nbdev's processors (front matter, show_doc cells, doc links) turn each notebook into a source
   in `_build/site_src/` named by its page URL (`optim/10_adax.ipynb` -> `optim/adax.ipynb`); `#|`
   options become tags (hidden cells `remove-cell`, so they still run; `#| slow` with `--skip-slow`
   and `#| cuda` without a GPU `skip-execution`) and `fig-cap`/`fig-alt` MyST-NB figure metadata.
2. jupyter-cache executes them, `--jobs` at a time, into a cache keyed on `su_notes/` and the flags.
3. The outputs are merged back: show_doc outputs become Markdown (headings in the page outline),
   claim records become boxes and give the Claims page, `claims.json`, the index's Claims column
   and each post's provenance line. 4. sphinx-build -W renders them (MyST-NB, execution off)."""

import argparse
import hashlib
import json
import os
import posixpath
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

ROOT = Path(__file__).resolve().parent.parent
BUILD, SRC = ROOT / '_build', ROOT / '_build' / 'site_src'
CLAIM_MIME = 'application/vnd.su-notes.claim+json'  # = su_notes.core.CLAIM_MIME
VERDICTS = ('holds', 'caveat', 'does not hold', 'untested')  # = su_notes.core.VERDICTS
MARKS = dict(zip(VERDICTS, '✓≈✗?'))
NOTE = {
    'slow': '`#| slow` cell: skipped in this build (`--skip-slow`); `make docs` runs it.',
    'cuda': '`#| cuda` cell: not run in this build (no GPU where these pages were built).',
}
SHOWDOC = re.compile(r'(\s*(#\|.*|show_doc\(.*\))\n?)+')  # a cell that only renders docs
LINK = re.compile(r'(?<!!)\[((?:[^\[\]\n]|\[[^\]\n]*\])*)\]\(([^()\s]+)\)')


def page_url(rel: str) -> str:
    "The page URL of a file of nbs/ (nbdev's: number prefix dropped, lower case)."
    from nbdev.doclinks import _nbpath2html

    return _nbpath2html(Path(rel)).as_posix() if rel.endswith('.ipynb') else rel[:-3] + '.html'


def source_name(rel: str) -> str:
    return page_url(rel)[:-5] + rel[rel.rindex('.') :]


def pandoc_id(text: str) -> str:
    "Pandoc's heading ids (as quarto gives them; nbdev's doc links use them): `core.html#f.g`."
    s = re.sub(r'\s+', '-', ''.join(c for c in text.strip().lower() if c.isalnum() or c in '_-. '))
    return s[next((i for i, c in enumerate(s) if c.isalpha()), len(s)) :] or 'section'


def relink(md: str, here: str, docs: dict, site: str) -> str:
    "Links to a notebook of nbs/ or a page of the site (`docs` keys) become relative source links."

    def sub(m):
        path, hsh, frag = m[2].partition('#')
        key = path[len(site) + 1 :] if site and path.startswith(site + '/') else None
        if key is None and not re.match(r'[a-zA-Z][\w+.-]*:|[#/]', m[2]):
            key = posixpath.normpath(posixpath.join(posixpath.dirname(here), path))
        if key not in docs:
            return m[0]
        return (
            f'[{m[1]}]({posixpath.relpath(docs[key], posixpath.dirname(here) or ".")}{hsh}{frag})'
        )

    parts = md.split('```')  # links inside code fences stay as they are
    parts[::2] = [LINK.sub(sub, p) for p in parts[::2]]
    return '```'.join(parts)


def says(n: int, verdict: str) -> str:
    "`1 holds`, `2 hold`, `1 does not hold`, `2 do not hold`, `1 with a caveat`, `3 untested`."
    one = n == 1
    forms = {'holds': f'hold{"s" * one}', 'does not hold': f'do{"es" * one} not hold'}
    return f'{n} {forms.get(verdict, "with a caveat" if verdict == "caveat" else "untested")}'


def plural(n: int, word: str) -> str:
    return f'{n} {word}{"s" * (n != 1)}'


def counts(recs: list, not_run=None) -> dict:
    "Post claims by verdict, checks, and the records of cells not run."
    posts = [r for r in recs if r.get('kind', 'post') == 'post']
    by = {v: sum(r['verdict'] == v for r in posts) for v in VERDICTS}
    nr = dict(not_run or {'post': 0, 'check': 0})
    return {'post': len(posts), **by, 'check': len(recs) - len(posts), 'not_run': nr}


def transform(path: Path, rel: str, docs: dict, site: str, skip_slow: bool, has_cuda: bool):
    "The site source of one notebook, not executed (see the module docstring)."
    from execnb.nbio import read_nb
    from nbdev.frontmatter import FrontmatterProc
    from nbdev.process import NBProcessor
    from nbdev.processors import add_links, add_show_docs, hide_line, rm_header_dash

    nb = read_nb(path)
    procs = [FrontmatterProc, add_show_docs, hide_line, rm_header_dash, add_links]
    NBProcessor(nb=nb, procs=procs, process=True)
    fm = json.loads(json.dumps(nb.get('frontmatter_', {}), default=str))  # YAML dates
    cells = [new_markdown_cell('')]  # the title block, written with the provenance line
    for c in [c for c in nb.cells if c.cell_type != 'raw']:
        if c.cell_type == 'markdown':
            cells.append(new_markdown_cell(relink(c.source, source_name(rel), docs, site)))
            continue
        d = {k.rstrip(':'): ' '.join(v).strip('"\'') for k, v in (c.directives_ or {}).items()}
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
            'remove-input': d.get('echo') == 'false' or not c.source.strip(),
        }
        meta = {'tags': [t for t, on in tags.items() if on], 'su_skipped': why}
        fig = {'figure': ('caption', d.get('fig-cap')), 'image': ('alt', d.get('fig-alt'))}
        meta['mystnb'] = {k: dict([kv]) for k, kv in fig.items() if kv[1]}
        meta['su_sd'] = bool(c.get('has_sd') or SHOWDOC.fullmatch(c.source))
        src = re.sub(r'\A(\s*#\s*\|.*\n?)*', '', c.source)  # quarto's options (nbdev keeps them)
        cells.append(new_code_cell(src, metadata=meta))
        if why and not tags['remove-cell']:
            cells.append(new_markdown_cell(f'{{.cell-note .cell-note-{why}}}\n{NOTE[why]}'))
    kernel = {'name': 'python3', 'display_name': 'Python 3', 'language': 'python'}
    return new_notebook(cells=cells, metadata={'kernelspec': kernel, 'su_fm': fm})


def title_block(fm: dict, prov: str = '') -> str:
    "Title, summary and, for a post, its source, date, papers and the provenance of its records."
    src = fm.get('source')
    meta = [f'- **Post:** [{fm.get("original_title") or src}]({src})'] if src else []
    meta += [f'- **{k}:** {fm[f]}' for k, f in (('By', 'date'), ('Papers', 'papers')) if f in fm]
    meta += [f'- [{prov}]{{.provenance}}'] * bool(prov)
    lead = ['{.post-lead}', str(fm['description']), ''] * ('description' in fm)
    box = [':::{container} post-meta', *meta, ':::'] * bool(meta)
    return '\n'.join([f'# {fm["title"]}', '', *lead, *box])


def claim_box(rec: dict, label: str) -> str:
    "One record's box: 'Claim' (kind post) or 'Check', the verdict, what was measured."
    v, kind, seeds = rec['verdict'], rec.get('kind') or 'post', list(rec.get('seeds') or [])
    extra = [f'*Tolerance:* {rec["tolerance"]}'] if rec.get('tolerance') else []
    extra += [f'*Seeds:* {", ".join(map(str, seeds)) if len(seeds) < 5 else len(seeds)}'] * bool(
        seeds
    )
    return (
        f'({label})=\n:::{{container}} claim claim-{v.replace(" ", "-")} claim-kind-{kind}\n'
        f'**{MARKS[v]} {"Claim" if kind == "post" else "Check"} — {v}.** {rec["claim"]}\n\n'
        f'*Measured:* {rec["measured"]}' + ('  \n' + ' · '.join(extra)) * bool(extra) + '\n:::'
    )


def fit_signature(m, width: int = 100) -> str:
    "A show_doc signature within `width` columns: a long line's comment goes above, then it wraps."
    out = []
    for line in m[0].split('\n'):
        ind = ' ' * (len(line) - len(line.lstrip()))
        code, sep, note = line.partition(' # ') if len(line) > width else (line, '', '')
        if sep:
            out += textwrap.wrap(
                note, width, initial_indent=ind + '# ', subsequent_indent=ind + '# '
            )
        out += textwrap.wrap(
            code.rstrip(), width, subsequent_indent=ind, break_long_words=False
        ) or ['']
    return '\n'.join(out)


def merge_outputs(nb, doc: str, docs: dict, site: str):
    """An executed page with show_doc outputs as Markdown cells and claim records as boxes;
    returns it, its records (labelled as their boxes) and the records of cells not run."""
    from nbdev.doclinks import NbdevLookup

    recs, not_run, section, cells = [], {'post': 0, 'check': 0}, '', []
    for c in nb.cells:
        outs = [o.get('data', {}) for o in c.get('outputs', [])]
        texts = (
            [c.source] if c.cell_type == 'markdown' else [o.get('text/markdown', '') for o in outs]
        )
        section = ([section] + re.findall(r'^#{2,6}\s+(.+?)\s*$', '\n'.join(texts), re.M))[-1]
        if c.cell_type == 'code' and c.metadata.get('su_sd'):  # show_doc: headings in the outline
            float_link = r'\)\{target="_blank" style="float:right[^}]*\}'
            md = [re.sub(float_link, '){.showdoc-source}', t) for t in texts if t.strip()]
            md = [re.sub(r'^\s*---\s*\n', '', NbdevLookup().linkify(t)) for t in md]
            md = [re.sub(r'```python\n.*?```', fit_signature, t, flags=re.S) for t in md]
            if 'remove-cell' not in c.metadata.tags:
                cells.append(new_markdown_cell(relink('\n\n'.join(md), doc, docs, site)))
            continue
        cells.append(c)
        if c.cell_type != 'code' or 'remove-cell' in c.metadata.tags:
            continue
        for call in re.split(r'\brecord_claim\(', c.source)[1:] if c.metadata.su_skipped else []:
            not_run['check' if re.match(r'[^\n]*kind\s*=\s*["\']check', call) else 'post'] += 1
        for o in [o['data'] for o in c.get('outputs', []) if CLAIM_MIME in o.get('data', {})]:
            label = f'claim-{doc.rsplit(".", 1)[0].replace("/", "-")}-{len(recs) + 1}'
            rec = o.pop(CLAIM_MIME)
            rec = json.loads(rec) if isinstance(rec, str) else dict(rec)
            recs.append(dict(rec, page=doc, section=section, label=label))
            o['text/markdown'] = claim_box(rec, label)
    nb.cells = cells
    return nb, recs, not_run


def provenance(recs: list, not_run: dict) -> str:
    "Where a page's records were measured: devices, torch and Python versions, dates, counts."
    ps = [r['provenance'] for r in recs if r.get('provenance')]
    if not ps:
        return ''
    vals = lambda k: sorted({str(p[k]) for p in ps if p.get(k)})
    devs = sorted({d.split(':')[0].upper() for d in vals('device')}, key=lambda d: (d != 'CPU', d))
    dates, c, more = vals('date'), counts(recs), sum(not_run.values())
    return (
        f'Checked on {" and ".join(devs)}, torch {" and ".join(vals("torch"))}, Python '
        f'{" and ".join(vals("python"))}, {" to ".join(dict.fromkeys([dates[0], dates[-1]]))} '
        f'({plural(c["post"], "claim")}, {plural(c["check"], "check")}'
        + f'; {more} more in cells this build did not run' * bool(more)
        + ').'
    )


INTRO = (
    "Each record comes from a `record_claim` call at the end of a check cell, collected as this "
    "site was built. A **claim** is what a post (or its paper) says; its verdict covers only the "
    "setting the notebook measured: *holds*, *caveat* (only under a condition the post does not "
    "state), *does not hold*, or *untested* (the notebook cannot test it as stated). A **check** "
    "says that this project's code agrees with a peer library or a closed form, at a tolerance."
)


def claims_page(posts: list) -> str:
    "The Claims page: summary by post, claims that do not hold, caveats and untested, all by post."
    tot = counts([r for p in posts for r in p['claims']])
    total = ', '.join(says(tot[v], v) for v in VERDICTS if tot[v])
    out = ['# Claims', '', '{.post-lead}', INTRO, '']
    out += [f'{plural(tot["post"], "claim")} across {plural(len(posts), "post")}: {total}; ']
    out[-1] += f'{plural(tot["check"], "check")}. The same ledger, machine-readable, with each '
    out[-1] += "run's device, versions and date: "
    out[-1] += '<a class="reference external" href="claims.json">claims.json</a>.'
    out += ['', '<div id="claim-filter"></div>', '', '## Summary by post', '']
    out += [
        '| Post | ' + ' | '.join(VERDICTS) + ' | checks | not run | records |',
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
        row = [f'[{p["title"]}]({p["doc"]})', *(str(c[v]) for v in VERDICTS), str(c['check'])]
        row += [f'{c["not_run"]["post"]}/{c["not_run"]["check"]}', f'{{ref}}`records <{p["id"]}>`']
        out.append(f'| {" | ".join(row)} |')
    groups = {'Claims that do not hold': ('does not hold',), 'Caveats and untested': VERDICTS[1::2]}
    for h, vs in groups.items():
        post = [(r, p) for p in posts for r in p['claims'] if r.get('kind', 'post') == 'post']
        sel = [rec(r, p) for r, p in post if r['verdict'] in vs]  # the posts' claims, not checks
        out += ['', f'## {h}', '', *(sel or ['None.'])]
    out += ['', '## All records by post', '']
    for p in posts:
        src = f'Post: [{p["original_title"]}]({p["source"]}) · page: [{p["title"]}]({p["doc"]})'
        out += [f'({p["id"]})=', f'### {p["title"]}', '', src, '']
        out += [rec(r, p) for r in p['claims']] or ['No claims recorded yet.', '']
    return '\n'.join(out)


def ledger(posts: list, prefix: str) -> dict:
    "`claims.json`: the counts, one entry per post and one record per `record_claim` output."
    import datetime

    from docutils.nodes import make_id

    recs, entries, keys = [], [], ('device', 'torch', 'python', 'date')
    for p in posts:
        m = re.search(r'/archives/(\d+)', p['source'])
        page = p['doc'].rsplit('.', 1)[0] + '.html'
        e = dict(post=m[1] if m else p['source'], source=p['source'], title=p['title'])
        e.update(notebook=f'{prefix}/{p["rel"]}', page=page)
        entries.append(dict(e, counts=counts(p['claims'], p['not_run'])))
        for r in p['claims']:
            prov, kind = r.get('provenance') or {}, r.get('kind', 'post')
            rec = dict(e, anchor=make_id(r['label']), section=r['section'], kind=kind)
            rec.update({k: r[k] for k in ('claim', 'measured', 'verdict')})
            rec.update(values=dict(r.get('values') or {}), tolerance=r.get('tolerance') or None)
            recs.append(
                dict(rec, seeds=list(r.get('seeds') or []), **{k: prov.get(k) for k in keys})
            )
    nr = {k: sum(p['not_run'][k] for p in posts) for k in ('post', 'check')}
    now = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds')
    tot = counts([r for p in posts for r in p['claims']], nr)
    head = dict(format='su_notes claims ledger', version=1, built=now, counts=tot)
    return dict(head, posts=entries, records=recs)


def execute(paths: list, cache_dir: Path, jobs: int, timeout: int):
    "Execute the sources not cached yet, `jobs` at a time; stop at the first failing notebook."
    import multiprocessing

    from jupyter_cache import get_cache
    from jupyter_cache.executors.basic import ExecutionWorkerLocalMProc, ProcessData

    cache = get_cache(cache_dir)
    for r in cache.list_project_records():
        cache.remove_nb_from_project(r.uri)
    for p in paths:
        cache.add_nb_to_project(str(p))
    todo = [ProcessData(r.pk, r.uri, cache, timeout, False) for r in cache.list_unexecuted()]
    todo.sort(key=lambda d: -os.path.getsize(d.uri))  # the longest first: the pool ends together
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

    nbs, site = Path(cfg.nbs_path), f'{cfg.doc_host}{cfg.doc_baseurl}'
    nb = read_nb(nbs / cfg.readme_nb)
    NBProcessor(nb=nb, procs=[FrontmatterProc, rm_export, hide_], process=True)

    def fix(m):
        path, hsh, frag = m[2].partition('#')
        if re.match(r'[a-zA-Z][\w+.-]*:|[#/]', m[2]):
            return m[0]
        local = (nbs / path).exists()
        return (
            f'[{m[1]}]({f"{nbs.name}/{m[2]}" if local else f"{site}/{page_url(path)}{hsh}{frag}"})'
        )

    fm, warn = nb.frontmatter_, '<!-- WARNING: THIS FILE WAS AUTOGENERATED! DO NOT EDIT! -->'
    parts = [f'# {fm["title"]}', warn, f'> {fm["description"]}']
    for c in nb.cells:
        if c.cell_type == 'markdown':
            parts.append(LINK.sub(fix, c.source))
        elif c.cell_type == 'code' and c.source.strip() and c.directives_.get('echo:') != ['false']:
            parts.append(f'```\n{c.source.strip()}\n```')
    text = re.sub(r'\n{3,}', '\n\n', '\n\n'.join(p for p in parts if p.strip())) + '\n'
    Path(cfg.config_path, 'README.md').write_text(text, encoding='utf-8')
    return 0


def write_pages(nbs: Path, rels: list, args, site: str) -> tuple:
    "Every page's source in SRC; returns (docs map, cache dir for these sources and flags)."
    from nbdev.frontmatter import _fm2dict, _re_fm_md

    docs = {r: source_name(r) for r in rels} | {page_url(r): source_name(r) for r in rels}
    text = ''.join((nbs / r).read_text(encoding='utf-8') for r in rels if r.endswith('.ipynb'))
    test = [sys.executable, '-c', 'import torch; print(torch.cuda.is_available())']
    cuda = bool(re.search(r'"#\|\s*cuda\b', text)) and not args.skip_cuda
    cuda = cuda and 'True' in subprocess.run(test, capture_output=True, text=True).stdout
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


def finish_pages(rels: list, docs: dict, cache, nbs: Path, site: str) -> list:
    "Executed pages with title blocks; the index's Claims column and toctrees; Claims page, ledger."
    posts, pages = [], {}
    for r in [r for r in rels if r.endswith('.ipynb')]:
        nb = cache.merge_match_into_notebook(nbformat.read(SRC / docs[r], as_version=4))[1]
        pages[r], recs, nr = merge_outputs(nb, docs[r], docs, site)
        fm = nb.metadata.su_fm
        if 'source' in fm:
            pid = 'post-' + docs[r].rsplit('.', 1)[0].replace('/', '-')
            post = dict(rel=r, doc=docs[r], title=fm['title'], source=fm['source'], id=pid)
            posts.append(dict(post, original_title=fm.get('original_title', fm['source'])))
            posts[-1].update(claims=recs, not_run=nr)
        nb.cells[0].source = title_block(fm, provenance(recs, nr) if 'source' in fm else '')
    if 'index.ipynb' in pages:
        cells, cat = pages['index.ipynb'].cells, {p['doc']: p for p in posts}
        for c in [c for c in cells if c.cell_type == 'markdown']:
            c.source = catalog(c.source, cat)
        cells.append(new_markdown_cell(toctrees(rels, docs)))
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
            c = p and counts(p['claims'], p['not_run'])
            nr = c and f' (+{c["not_run"]["post"]} in cells not run)' * bool(c['not_run']['post'])
            bad = c and f'{says(c["does not hold"], "does not hold")}, {c["untested"]} untested'
            line += (
                f' {{ref}}`{plural(c["post"], "claim")}: {bad}{nr} <{p["id"]}>` |' if p else ' — |'
            )
        elif table:
            table, line = False, ':::\n' + line
        out.append(line)
    return '\n'.join(out).removesuffix('\n')


def toctrees(rels: list, docs: dict) -> str:
    "Hidden toctrees as nbdev's sidebar: top-level pages and the Claims page, then one per folder."
    groups = {'': [docs[r].rsplit('.', 1)[0] for r in rels if '/' not in r and r != 'index.ipynb']}
    groups[''].append('claims')
    for r in [r for r in rels if '/' in r]:
        groups.setdefault(r.split('/')[0], []).append(docs[r].rsplit('.', 1)[0])
    cap = lambda g: f':caption: {g}\n' * bool(g)
    tree = '```{{toctree}}\n:hidden:\n{}\n{}\n```'
    return '\n\n'.join(tree.format(cap(g), '\n'.join(d)) for g, d in groups.items())


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
    nbs, site = (args.nbs or cfg.nbs_path).resolve(), f'{cfg.doc_host}{cfg.doc_baseurl}'
    rels = sorted(Path(p).relative_to(nbs).as_posix() for p in nbglob(nbs))
    rels = sorted(rels + [p.name for p in nbs.glob('*.md')], key=lambda r: ('/' in r, r))
    env = dict(SU_NOTES_PROGRESS='0', OMP_NUM_THREADS='1', PYDEVD_DISABLE_FILE_VALIDATION='1')
    os.environ.update(env, MPLBACKEND='module://matplotlib_inline.backend_inline')
    docs, cache_dir = write_pages(nbs, rels, args, site)
    srcs = [SRC / docs[r] for r in rels if r.endswith('.ipynb')]
    cache, err = execute(srcs, cache_dir, args.jobs, args.timeout)
    if err:
        return print(f'\nmake docs FAILED: {err}', file=sys.stderr) or 1
    posts, out = finish_pages(rels, docs, cache, nbs, site), BUILD / 'html'
    shutil.rmtree(out, ignore_errors=True)
    opts = ['-W', '--keep-going', '-q', '-j', str(args.jobs), '-c', str(ROOT / 'docs')]
    opts += ['-d', str(BUILD / 'doctrees'), str(SRC), str(out)]
    if subprocess.run([sys.executable, '-m', 'sphinx', *opts]).returncode:
        return print('\nmake docs FAILED: sphinx-build warned (above)', file=sys.stderr) or 1
    shutil.copy2(BUILD / 'claims.json', out / 'claims.json')
    shutil.rmtree(cfg.doc_path, ignore_errors=True)
    shutil.move(out, cfg.doc_path)
    (cfg.doc_path / '.nojekyll').touch()
    print(f'{len(rels) + 1} pages, {len(posts)} posts written to {cfg.doc_path}')
    return readme(cfg)


if __name__ == '__main__':
    sys.exit(main())
