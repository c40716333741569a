"""The documentation site: build_docs' helpers (fast, no build needed) and the rendered `_docs/` opened in
headless Chromium (Debian's /usr/bin/chromium driven by Playwright; `make browser` installs it).

The browser tests need `make docs` to have been run: without `_docs/` they FAIL (they do not skip)."""
import functools, http.server, importlib.util, json, os, re, socketserver, sys, threading
from pathlib import Path
from urllib.parse import urljoin, urlparse
from urllib.request import urlopen

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / '_docs'
ARTIFACTS = Path(__file__).resolve().parent / 'artifacts'
CHROMIUM = os.environ.get('CHROMIUM', '/usr/bin/chromium')
CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
                 '--disable-background-networking', '--disable-component-update', '--disable-sync']
# Pages whose content the site test checks specifically (URLs are quarto's: number prefix dropped).
MATH_PAGE = 'smoothing/smoothing.html'
FIGURE_PAGES = ['optim/adax.html', 'attention/linear_attention.html']
PHONE = dict(width=390, height=844)


def _load_build_docs():
    spec = importlib.util.spec_from_file_location('build_docs', ROOT / 'tools' / 'build_docs.py')
    mod = importlib.util.module_from_spec(spec)
    sys.modules.setdefault('build_docs', mod)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope='module')
def bd():
    cwd = os.getcwd()
    os.chdir(ROOT)  # nbdev's get_config() looks for settings.ini from the cwd
    try: yield _load_build_docs()
    finally: os.chdir(cwd)


# --------------------------------------------------------------------------------------------------------
# build_docs helpers
# --------------------------------------------------------------------------------------------------------

def test_page_url_matches_quarto(bd):
    assert bd.page_url('optim/10_adax.ipynb') == 'optim/adax.html'
    assert bd.page_url('index.ipynb') == 'index.html'
    assert bd.page_url('00_core.ipynb') == 'core.html'
    assert bd.page_url('attention/10_linear_attention.ipynb') == 'attention/linear_attention.html'
    assert bd.page_url('benchmarks.md') == 'benchmarks.html'      # quarto keeps a .md page's name
    assert bd.page_url('10_notes.md') == '10_notes.html'
    assert bd.page_url('a/20_B.ipynb') == 'a/b.html'              # nbdev lower-cases
    assert bd.page_url('x/page.md', {'output-file': 'other.html'}) == 'x/other.html'
    assert bd.rel_href('optim/adax.html', 'index.html') == 'optim/adax.html'
    assert bd.rel_href('core.html', 'optim/adax.html') == '../core.html'
    assert bd.rel_href('optim/sgd.html', 'optim/adax.html') == 'sgd.html'
    assert bd.root_prefix('optim/adax.html') == '../' and bd.root_prefix('index.html') == ''


def _touch_nb(p: Path, title: str):
    p.parent.mkdir(parents=True, exist_ok=True)
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell(f'# {title}\n\n> about {title}')])
    nbformat.write(nb, p)


def test_sidebar_derivation_follows_nbdev(bd, tmp_path):
    for rel in ['index.ipynb', '00_core.ipynb', 'optim/10_adax.ipynb', 'optim/20_clipping.ipynb',
                'attention/10_linear_attention.ipynb', 'smoothing/10_smoothing.ipynb',
                'dynamics/10_gradient_flow.ipynb', '_scratch.ipynb', 'optim/_draft.ipynb', '_hidden/10_x.ipynb']:
        _touch_nb(tmp_path / rel, rel)
    (tmp_path / 'benchmarks.md').write_text('---\ntitle: Benchmarks\n---\n\ntext\n')
    (tmp_path / '_quarto.yml').write_text('project:\n  type: website\n')
    (tmp_path / 'styles.css').write_text('')
    contents = bd.derive_sidebar(tmp_path)
    assert (tmp_path / 'sidebar.yml').exists()       # quarto's metadata file, written as nbdev does
    assert contents == [
        'index.ipynb', '00_core.ipynb', 'benchmarks.md',
        {'section': 'attention', 'contents': ['attention/10_linear_attention.ipynb']},
        {'section': 'dynamics', 'contents': ['dynamics/10_gradient_flow.ipynb']},
        {'section': 'optim', 'contents': ['optim/10_adax.ipynb', 'optim/20_clipping.ipynb']},
        {'section': 'smoothing', 'contents': ['smoothing/10_smoothing.ipynb']},
    ]
    assert bd.sidebar_files(contents)[:3] == ['index.ipynb', '00_core.ipynb', 'benchmarks.md']
    assert len(bd.sidebar_files(contents)) == 8


def _code(src): return nbformat.v4.new_code_cell(src)


def test_cell_skip_reason_mirrors_nbdev(bd):
    skip = bd.cell_skip_reason
    assert skip(_code('x = 1')) is None
    assert skip(nbformat.v4.new_markdown_cell('#| cuda')) is None
    assert skip(_code('#| hide\nimport nbdev; nbdev.nbdev_export()')) == 'nbdev_export'
    assert skip(_code('#| eval: false\nboom()')) == 'eval: false'
    assert skip(_code('#|eval:false\nboom()')) == 'eval: false'
    assert skip(_code('#| cuda\nx.cuda()'), has_cuda=False) == 'cuda'
    assert skip(_code('#| cuda\nx.cuda()'), has_cuda=True) is None
    assert skip(_code('# | slow\ntrain()')) is None                       # slow cells run in the docs build
    assert skip(_code('#| slow\ntrain()'), skip_slow=True) == 'slow'      # ... unless --skip-slow
    assert skip(_code('x = 1\n#| cuda')) is None                           # directives only lead a cell


def test_cell_options_and_pandoc_markdown(bd):
    opts, src = bd.split_cell_options('#| echo: false\n#| output: asis\n#| fig-cap: "A *figure*"\nshow_doc(f)\n')
    assert opts == {'echo': False, 'output': 'asis', 'fig-cap': 'A *figure*'} and src == 'show_doc(f)\n'
    assert bd.split_cell_options('x = 1  #| not an option\n') == ({}, 'x = 1  #| not an option\n')
    assert bd.pandoc_id('GaussianMixture.log_prob') == 'gaussianmixture.log_prob'
    assert bd.pandoc_id('1. Setting and notation') == 'setting-and-notation'
    assert bd.pandoc_id('Why $\\tau \\to 0$?') == 'why-tau-to-0'
    assert bd.pandoc_id('???') == 'section'
    md = bd.pandoc_md_to_commonmark('[source](https://x.org/a.py#L3){target="_blank" style="float:right"}')
    assert md == '<a href="https://x.org/a.py#L3" target="_blank" style="float:right">source</a>'
    md = bd.pandoc_md_to_commonmark('::: {.callout-note}\nhi\n:::\n```\n:::\n```')
    assert '<div class="callout-note">' in md and '</div>' in md and md.endswith('```\n:::\n```')
    assert bd.pandoc_md_to_commonmark('## Title {#custom .unnumbered}') == '## Title'


def test_processed_cells_follow_quarto_options(bd):
    "The renderer applies the options nbdev leaves in processed cells (hidden input, hidden output, fold)."
    Pre = bd._cell_options_preprocessor()
    out = nbformat.v4.new_output('stream', name='stdout', text='hi\n')
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_raw_cell('---\ntitle: T\ndescription: D\nsource: https://kexue.fm/archives/1\n---\n'),
        nbformat.v4.new_code_cell('#| echo: false\nprint(1)', outputs=[out]),
        nbformat.v4.new_code_cell('#| output: false\nprint(2)', outputs=[out]),
        nbformat.v4.new_code_cell('#| include: false\nprint(3)', outputs=[out]),
        nbformat.v4.new_code_cell('#| code-fold: show\n#| code-summary: "Exported source"\ndef f(): pass'),
    ])
    nb, res = Pre().preprocess(nb, {})
    assert res['frontmatter'] == {'title': 'T', 'description': 'D', 'source': 'https://kexue.fm/archives/1'}
    assert [c.source for c in nb.cells] == ['print(1)', 'print(2)', 'def f(): pass']
    assert nb.cells[0].metadata.transient == {'remove_source': True} and nb.cells[0].outputs
    assert nb.cells[1].outputs == []
    assert nb.cells[2].metadata.su_site == {'fold': 'show', 'fold_summary': 'Exported source'}


# --------------------------------------------------------------------------------------------------------
# The rendered site in a real browser
# --------------------------------------------------------------------------------------------------------

def _docs_missing_message():
    return f'{DOCS.relative_to(ROOT)}/ is missing (no index.html): run `make docs` first to build the site'


def test_site_is_built():
    "Fails (never skips) when the site has not been built."
    assert (DOCS / 'index.html').exists(), _docs_missing_message()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *a): pass


@pytest.fixture(scope='module')
def site_url():
    if not (DOCS / 'index.html').exists():
        pytest.fail(_docs_missing_message())
    handler = functools.partial(_QuietHandler, directory=str(DOCS))
    srv = socketserver.ThreadingTCPServer(('127.0.0.1', 0), handler)
    srv.daemon_threads = True
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield f'http://127.0.0.1:{srv.server_address[1]}/'
    srv.shutdown(); srv.server_close()


def _visit(context, url, screenshot=None, full_page=True):
    "Open `url`, wait for MathJax's first pass and the images; return facts about the page."
    page = context.new_page()
    errors = []
    page.on('console', lambda m: errors.append(f'console.{m.type}: {m.text}') if m.type == 'error' else None)
    page.on('pageerror', lambda e: errors.append(f'pageerror: {e}'))
    page.on('requestfailed', lambda r: errors.append(f'requestfailed: {r.url} {r.failure}'))
    resp = page.goto(url, wait_until='load')
    page.wait_for_function("() => document.documentElement.getAttribute('data-mathjax') === 'done'", timeout=60_000)
    page.wait_for_function("() => Array.from(document.images).every(i => i.complete)", timeout=30_000)
    facts = page.evaluate("""() => {
        const walker = document.createTreeWalker(document.querySelector('main') || document.body, NodeFilter.SHOW_TEXT);
        const raw = [];
        for (let n = walker.nextNode(); n; n = walker.nextNode()) {
            if (n.parentElement.closest('pre, code, script, style, .MathJax, .MathJax_Display, .MathJax_Preview')) continue;
            if (n.textContent.includes('$$') || /\\$[^$\\s][^$]*\\\\[a-zA-Z]+[^$]*\\$/.test(n.textContent)) raw.push(n.textContent.trim().slice(0, 120));
        }
        return {
            title: document.title,
            h1: (document.querySelector('h1.title') || {}).textContent || '',
            sidebar: Array.from(document.querySelectorAll('#sidebar a')).map(a => [a.getAttribute('href'), a.textContent.trim()]),
            links: Array.from(document.querySelectorAll('a[href]')).map(a => a.href),
            mathjax: document.querySelectorAll('.MathJax, .MathJax_Display, mjx-container').length,
            mathjax_errors: document.querySelectorAll('.MathJax_Error, merror, [data-mjx-error]').length,
            raw_tex: raw,
            figures: Array.from(document.querySelectorAll('.jp-OutputArea img')).map(i => [i.naturalWidth, i.complete]),
            overflow: document.documentElement.scrollWidth - window.innerWidth,
            body_overflow: document.body.scrollWidth - window.innerWidth,
            source_link: (document.querySelector('.source-post a') || {}).href || null,
        };
    }""")
    facts.update(status=resp.status if resp else None, errors=errors, url=url)
    if screenshot: page.screenshot(path=str(ARTIFACTS / screenshot), full_page=full_page)
    page.close()
    return facts


@pytest.fixture(scope='module')
def crawl(site_url):
    "Visit every sidebar page at desktop and phone width, recording every request the pages make."
    from playwright.sync_api import sync_playwright
    ARTIFACTS.mkdir(exist_ok=True)
    requests, blocked = [], []

    def guard(route):
        host = urlparse(route.request.url).hostname
        if route.request.url.startswith('data:') or host == '127.0.0.1': route.continue_()
        else:
            blocked.append(route.request.url)
            route.abort()
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        desk = browser.new_context(viewport=dict(width=1280, height=900))
        phone = browser.new_context(viewport=PHONE, device_scale_factor=2, is_mobile=True, has_touch=True)
        for ctx in (desk, phone):
            ctx.route('**/*', guard)
            ctx.on('request', lambda r: requests.append(r.url))
        home = _visit(desk, site_url, screenshot='index-desktop.png', full_page=False)
        pages = {}
        for href, text in home['sidebar']:
            url = urljoin(site_url, href)
            name = urlparse(url).path.strip('/').replace('/', '_').removesuffix('.html') or 'index'
            d = _visit(desk, url, screenshot=f'{name}-desktop.png')
            p = _visit(phone, url, screenshot=f'{name}-phone.png', full_page=False)
            pages[urlparse(url).path.lstrip('/')] = dict(link_text=text, desktop=d, phone=p)
        # the phone menu, opened
        pg = phone.new_page()
        pg.goto(site_url, wait_until='load')
        pg.click('label.nav-toggle')
        pg.screenshot(path=str(ARTIFACTS / 'index-phone-menu.png'))
        menu_visible = pg.is_visible('#sidebar')
        pg.close()
        browser.close()
    return dict(home=home, pages=pages, requests=requests, blocked=blocked, menu_visible=menu_visible)


def test_every_sidebar_link_loads_with_its_title(crawl):
    assert len(crawl['pages']) >= 3, crawl['home']['sidebar']
    bad = {u: (p['desktop']['status'], p['link_text'], p['desktop']['h1'], p['desktop']['title'])
           for u, p in crawl['pages'].items()
           if p['desktop']['status'] != 200 or p['link_text'] != p['desktop']['h1'].strip()
           or p['link_text'] not in p['desktop']['title']}
    assert not bad, f'pages with a bad status or title (status, link text, h1, <title>): {bad}'


def test_expected_pages_are_in_the_sidebar(crawl):
    expected = ['index.html', 'core.html', 'benchmarks.html', MATH_PAGE, *FIGURE_PAGES,
                'dynamics/gradient_flow.html']
    missing = [u for u in expected if u not in crawl['pages'] and not (u == 'index.html' and '' in crawl['pages'])]
    assert not missing, f'pages missing from the sidebar (notebook not written yet, or not built): {missing}'


def test_internal_links_resolve(crawl, site_url):
    "Every same-site link on every page (catalog links to notebooks included) answers 200."
    links = {l.split('#')[0] for p in crawl['pages'].values() for l in p['desktop']['links']}
    local = sorted(l for l in links if l.startswith(site_url))
    broken = []
    for l in local:
        try: urlopen(l, timeout=10).close()
        except Exception as e: broken.append(f'{l}: {e}')
    assert not broken, 'broken links:\n' + '\n'.join(broken)


def test_math_is_typeset(crawl):
    p = crawl['pages'].get(MATH_PAGE)
    assert p, f'{MATH_PAGE} is not in the site'
    d = p['desktop']
    assert d['mathjax'] > 10, d['mathjax']
    assert d['mathjax_errors'] == 0
    assert not d['raw_tex'], f'untypeset TeX left on the page: {d["raw_tex"][:5]}'
    core = crawl['pages'].get('core.html')
    assert core and core['desktop']['mathjax'] > 0 and not core['desktop']['raw_tex']


@pytest.mark.parametrize('url', FIGURE_PAGES)
def test_figures_are_shown(crawl, url):
    p = crawl['pages'].get(url)
    assert p, f'{url} is not in the site'
    figs = p['desktop']['figures']
    assert figs, f'no figure (img output) on {url}'
    assert all(w > 0 and ok for w, ok in figs), f'figures that did not load on {url}: {figs}'


def test_post_pages_link_their_source_post(crawl):
    # topic folders hold the posts, plus one overview page per subpackage (nbs/<topic>/00_<topic>.ipynb: re-exports)
    overviews = {_load_build_docs().page_url(p.relative_to(ROOT / 'nbs')) for p in (ROOT / 'nbs').glob('*/00_*.ipynb')}
    posts = {u: p for u, p in crawl['pages'].items() if '/' in u and u not in overviews}
    assert len(posts) >= 4 and overviews, (sorted(crawl['pages']), overviews)
    bad = {u: p['desktop']['source_link'] for u, p in posts.items()
           if not re.match(r'^https://kexue\.fm/archives/\d+', p['desktop']['source_link'] or '')}
    assert not bad, f'post pages without a kexue.fm source link: {bad}'


def test_no_console_errors(crawl):
    errs = {u: p[v]['errors'] for u, p in crawl['pages'].items() for v in ('desktop', 'phone') if p[v]['errors']}
    assert not errs, json.dumps(errs, indent=1)[:4000]


def test_no_request_leaves_localhost(crawl):
    assert crawl['requests'], 'no requests were recorded at all'
    outside = [u for u in crawl['requests'] if not u.startswith('data:') and urlparse(u).hostname != '127.0.0.1']
    assert not outside and not crawl['blocked'], f'requests to other hosts: {sorted(set(outside + crawl["blocked"]))}'


def test_phone_width_has_no_horizontal_overflow(crawl):
    bad = {u: (p['phone']['overflow'], p['phone']['body_overflow']) for u, p in crawl['pages'].items()
           if p['phone']['overflow'] > 0 or p['phone']['body_overflow'] > 0}
    assert not bad, f'pages wider than a {PHONE["width"]}px viewport (document, body overflow in px): {bad}'
    assert crawl['menu_visible'], 'the sidebar does not open from the phone menu button'


def test_execute_notebook_skips_flags_and_reports_failures(bd, tmp_path):
    "A tiny notebook through the docs build's executor: skips, notes, kernel, env, coalesced progress bars."
    src = tmp_path / 'topic' / '10_demo.ipynb'
    src.parent.mkdir()
    nbformat.write(nbformat.v4.new_notebook(cells=[
        _code('import os, sys\nprint(sys.executable)\nprint(os.getcwd())\n'
              'print(os.environ.get("MPLBACKEND"), os.environ.get("SU_NOTES_PROGRESS"))'),
        _code('#| cuda\nraise RuntimeError("needs a GPU")'),
        _code('#| slow\nprint("slow ran")'),
        _code('#| eval: false\nraise RuntimeError("not evaluated")'),
        _code('import sys\nfor i in range(3): sys.stderr.write(f"\\rstep {i}"); sys.stderr.flush()\n'
              'sys.stderr.write("\\n");'),
        _code('#| hide\nimport nbdev; nbdev.nbdev_export()'),
    ]), src)
    r = bd.execute_notebook(src, tmp_path / 'out.ipynb', skip_slow=False, has_cuda=False, timeout=120)
    assert r['error'] is None, r['error']
    cells = nbformat.read(tmp_path / 'out.ipynb', as_version=4).cells
    assert cells[0].outputs[0].text.split('\n')[:3] == [
        sys.executable, str(src.parent), 'module://matplotlib_inline.backend_inline None']
    assert 'needs a GPU' in cells[1].outputs[0].data['text/html'] and cells[1].execution_count is None
    assert cells[2].outputs[0].text == 'slow ran\n'
    assert cells[3].outputs == [] and cells[5].outputs == []
    assert [o.text for o in cells[4].outputs] == ['step 2\n']          # the final state of the \r updates

    nbformat.write(nbformat.v4.new_notebook(cells=[
        _code('#| slow\nprint("slow ran")'), _code('x = 1'), _code('1 / 0'), _code('print("never")')]), src)
    r = bd.execute_notebook(src, tmp_path / 'out2.ipynb', skip_slow=True, has_cuda=False, timeout=120)
    assert r['error'] and 'cell 2' in r['error'] and 'ZeroDivisionError' in r['error'] and '\x1b[' not in r['error']
    failed = nbformat.read(r['failed_copy'], as_version=4).cells
    assert 'skipped' in failed[0].outputs[0].data['text/plain'] and failed[3].outputs == []
