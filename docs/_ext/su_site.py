"""Around the pages: Chinese and accent-folded search, arXiv links, each post's links (notebook,
source, ledger, benchmark; templates/post-links.html) and `llms.txt`."""

import json
import re
import shutil
import unicodedata
from pathlib import Path

from docutils import nodes
from nbdev.config import get_config
from sphinx.search.zh import SearchChinese
from su_notes._modidx import d as MODIDX

ARXIV = re.compile(r'arXiv[: ](\d{4}\.\d{4,5}(?:v\d+)?)')
PAGE = re.compile(r'(^|/)\d+_')  # nbdev's page names drop the number
NOT_IN = (nodes.reference, nodes.literal, nodes.FixedTextElement, nodes.raw, nodes.math)


class SearchSite(SearchChinese):
    "jieba's words for Chinese, English stemming, accents folded (su_site.js folds the query)."

    language_name = (
        'English'  # the JS stemmer's name: Sphinx 9's zh asks for a missing ChineseStemmer
    )

    def split(self, input: str) -> list[str]:
        s = unicodedata.normalize('NFKD', input)
        return super().split(''.join(c for c in s if not unicodedata.combining(c)))


def inited(app, cfg):
    "Notebook → page (nbdev: nbs/optim/10_adax.ipynb → optim/adax); posts' links for the template."
    nbs, app.su_nbs = Path(app.confdir).parent / 'nbs', {}
    posts = cfg.html_context.setdefault(
        'su_posts', {}
    )  # page → links, for templates/post-links.html
    md = (nbs / 'benchmarks.md').read_text(encoding='utf-8')
    hits = re.findall(r'^\((bench-[\w-]+)\)=\n###.*\n+.*?\]\(([^)\s]+)\.ipynb\)', md, re.M)
    bench = {PAGE.sub(r'\1', nb).lower(): label for label, nb in reversed(hits)}  # its first table
    git = get_config(path=app.confdir).git_url.rstrip('/') + '/blob/main/'
    for p in sorted(nbs.rglob('[!_]*.ipynb')):
        rel = p.relative_to(nbs.parent).as_posix()
        head = ''.join(json.loads(p.read_text(encoding='utf-8'))['cells'][0]['source'])
        app.su_nbs[doc := PAGE.sub(r'\1', rel[4:-6]).lower()] = p, head
        if 'kexue.fm/archives/' in head:
            posts[doc] = dict(nb=p.name, src=git + rel, bench=bench.get(doc))
    cfg.html_search_language = 'zh'
    cfg.html_theme_options['article_header_end'] = ['post-links.html']


def arxiv_links(app, doctree):
    "arXiv ids in text become links to arxiv.org."
    for t in [t for t in doctree.findall(nodes.Text) if ARXIV.search(t)]:
        if isinstance(t.parent, NOT_IN):  # a link, code or math already
            continue
        parts, pos = [], 0
        for m in ARXIV.finditer(t):
            ref = nodes.reference(m[0], m[0], refuri=f'https://arxiv.org/abs/{m[1]}')
            parts, pos = [*parts, nodes.Text(t[pos : m.start()]), ref], m.end()
        t.parent.replace(t, [*parts, nodes.Text(t[pos:])])


def finished(app, exc):
    "Post notebooks next to their pages; llms.txt (llmstxt.org): every page by topic, then the API."
    if exc is not None or app.builder.format != 'html':
        return
    out, sections = Path(app.outdir), {}
    base = getattr(app.config, 'su_site_url', '').rstrip('/') + '/'  # su_build's setting
    for doc in sorted(app.env.found_docs, key=lambda d: (d.count('/'), d)):
        nb, head = app.su_nbs.get(doc, (None, ''))
        if nb:
            shutil.copy2(nb, out / Path(doc).parent / nb.name)
        desc = ''.join(f': {lead}' for lead in re.findall(r'^> (.+)$', head, re.M)[:1])
        item = f'- [{app.env.titles[doc].astext()}]({base}{doc}.html){desc}'
        sections.setdefault(doc.split('/')[0] if '/' in doc else 'Site', []).append(item)
    for mod, syms in MODIDX['syms'].items():
        names = ', '.join(x[len(mod) + 1 :] for x in syms if '._' not in x[len(mod) :])  # public
        url = next(iter(syms.values()), [''])[0].split('#')[0]
        sections.setdefault('API', []).append(f'- [{mod}]({base}{url}): {names}')
    lines = [f'# {app.config.project}', '', f"> {get_config(path=app.confdir).description}"]
    for sect, items in sections.items():
        lines += ['', f'## {sect}', '', *items]
    (out / 'llms.txt').write_text('\n'.join(lines) + '\n', encoding='utf-8')


def setup(app):
    app.add_search_language(SearchSite)
    app.connect('config-inited', inited)
    app.connect('doctree-read', arxiv_links)
    app.connect('build-finished', finished)
    app.add_js_file('su_site.js')
    return {'parallel_read_safe': True, 'parallel_write_safe': True}
