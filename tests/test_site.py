"""The rendered site `_docs/` opened in headless Chromium (Debian's /usr/bin/chromium driven by Playwright;
`make browser` installs it) at 1280 and 390 px, as a reader sees it. Only the built site is read (its pages,
`claims.json`, `llms.txt`); the builder is tested in tests/test_build_docs.py.

The browser tests need `make docs` (or the quick build of `make test`) to have run: without `_docs/` they FAIL
(they do not skip). Screenshots go to tests/artifacts/."""

import functools
import http.server
import json
import os
import re
import socketserver
import threading
from pathlib import Path
from urllib.parse import urljoin, urlparse
from urllib.request import urlopen

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / '_docs'
ARTIFACTS = Path(__file__).resolve().parent / 'artifacts'
CHROMIUM = os.environ.get('CHROMIUM', '/usr/bin/chromium')
CHROMIUM_ARGS = [
    '--headless',
    '--no-sandbox',
    '--disable-gpu',
    '--disable-quic',
    '--no-first-run',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
]
PHONE = dict(width=390, height=844)
DESKTOP = dict(width=1280, height=900)
# A term that only (or first of all) that post's page is about: the site search must find the page.
SEARCH_TERMS = {
    'smoothing/smoothing.html': 'softplus',
    'optim/adax.html': 'AdaXW',
    'attention/linear_attention.html': 'Katharopoulos',
    'dynamics/gradient_flow.html': 'Rosenbrock',
    'optim/gradient_clipping.html': 'clipping',
    'optim/implicit_gradient_regularization.html': 'implicit',
    'optim/batch_size_scaling.html': 'surge',
    'optim/weight_scale_shift.html': 'WEISSI',
    'optim/sampling_view.html': 'tilted',
    'optim/multitask_loss_weighting.html': 'uncertainty',
    'optim/multitask_gradients.html': 'PCGrad',
    'dynamics/kernel_machine.html': 'NTK',
    'dynamics/simsiam.html': 'SimSiam',
    'generative/vae_geometry.html': 'ellipse',
    'generative/nvae.html': 'NVAE',
    'generative/ddim.html': 'DDIMScheduler',
    'generative/probability_flow_ode.html': 'Hutchinson',
    'gan/self_modulation.html': 'checkerboard',
    'gan/cascading_rejection.html': 'cascade',
    'gan/self_orthogonality.html': 'Hadamard',
    'gan/reading_list.html': 'PixelCNN',
    'interpret/integrated_gradients.html': 'Sundararajan',
    'text/decoding_consistency.html': 'ConsistentEOSProcessor',
    'text/am_softmax.html': 'CosFaceLoss',
    'text/cosent.html': 'Powell',
    'text/jose.html': 'SphereSGD',
    'text/min_entropy_library.html': 'Roweis',
    'text/viterbi_sampling.html': 'reservoir',
    'bert/bert_in_torch.html': 'BertClassifier',
    'bert/init_std.html': 'Xavier',
    'bert/wobert.html': 'WoBertTokenizer',
    'bert/perturbed_masking.html': 'LividWo',
    'bert/triplet_extraction.html': 'ConditionalLayerNorm',
    'bert/pretraining_pipeline.html': 'MLMHead',
    'bert/layer_reuse.html': 'GraphModule',
}
DOCS_ONLY_POSTS = {'gan/reading_list.html'}  # a post page with no code: no math, API entries or figures
SHARED_PAGES = {'gan/toy_gan.html'}  # a topic page that is not a post (no source post)
# every post page with code has at least one figure
FIGURE_PAGES = [
    'core.html',
    *sorted(SHARED_PAGES),
    *(u for u in SEARCH_TERMS if u not in DOCS_ONLY_POSTS),
]


# --------------------------------------------------------------------------------------------------------
# The rendered site in a real browser
# --------------------------------------------------------------------------------------------------------


# Searches beyond one term per post (issue 16 §4): Chinese (jieba), accents folded, a post's name ranks it first.
SEARCH_EXTRA = ['梯度', 'Frechet', 'Fréchet', 'AdaX']
COLUMNS = 100  # code lines are formatted to 100 columns (ruff); the article must hold them at 1280 px
LEDGER_FIELDS = set(
    'post source title notebook page anchor section kind claim measured values tolerance verdict seeds device torch '
    'python date'.split()
)
FIGURE_PX = 700  # figures are drawn at most 7 in wide at 100 dpi


def _page_url(rel: str) -> str:
    "nbdev's page of a notebook: optim/10_adax.ipynb → optim/adax.html (the number dropped, lower case)."
    p = Path(rel)
    return (p.parent / re.sub(r'^\d+_', '', p.stem).lower()).with_suffix('.html').as_posix()


def _docs_missing_message():
    return f'{DOCS.relative_to(ROOT)}/ is missing (no index.html): run `make docs` first to build the site'


def test_site_is_built():
    "Fails (never skips) when the site has not been built."
    assert (DOCS / 'index.html').exists(), _docs_missing_message()
    assert (DOCS / 'searchindex.js').exists() and (DOCS / '_static' / 'mathjax' / 'tex-chtml.js').exists()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *a):
        pass


@pytest.fixture(scope='module')
def site_url():
    if not (DOCS / 'index.html').exists():
        pytest.fail(_docs_missing_message())
    srv = socketserver.ThreadingTCPServer(('127.0.0.1', 0), functools.partial(_QuietHandler, directory=str(DOCS)))
    srv.daemon_threads = True
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f'http://127.0.0.1:{srv.server_address[1]}/'
    srv.shutdown()
    srv.server_close()


_FACTS_JS = """async () => {
    if (window.MathJax && MathJax.startup && MathJax.startup.promise) await MathJax.startup.promise;
    await Promise.all(Array.from(document.images)
        .map(i => i.complete ? 0 : new Promise(r => { i.onload = i.onerror = r; })));
    const main = document.querySelector('article.bd-article') || document.body;
    const raw = [];
    const walker = document.createTreeWalker(main, NodeFilter.SHOW_TEXT);
    for (let n = walker.nextNode(); n; n = walker.nextNode()) {
        if (n.parentElement.closest('pre, code, script, style, mjx-container')) continue;
        if (n.textContent.includes('$$') || /\\\\[a-zA-Z]+/.test(n.textContent) && /[$]|\\\\[(\\[]/.test(n.textContent))
            raw.push(n.textContent.trim().slice(0, 120));
    }
    const unlinked = [];
    const w2 = document.createTreeWalker(main, NodeFilter.SHOW_TEXT);
    for (let n = w2.nextNode(); n; n = w2.nextNode()) {
        if (n.parentElement.closest('a, pre, code, script, style')) continue;
        const m = n.textContent.match(/arXiv[: ]\\d{4}\\.\\d{4,5}/);
        if (m) unlinked.push(m[0]);
    }
    const toc = document.querySelector('#pst-page-toc-nav, nav.page-toc');
    const tocRect = toc ? toc.getBoundingClientRect() : null;
    const scrolls = el => { const s = getComputedStyle(el).overflowX; return s === 'auto' || s === 'scroll'; };
    const clipped = Array.from(main.querySelectorAll('mjx-container[display="true"], pre'))
        .filter(el => el.scrollWidth > el.clientWidth + 1 && !scrolls(el)
                      && !(el.parentElement && scrolls(el.parentElement)
                           && el.parentElement.clientWidth < el.scrollWidth))
        .map(el => el.tagName + ': ' + el.textContent.slice(0, 60));
    return {
        title: document.title,
        h1: (main.querySelector('h1') || {textContent: ''}).textContent.replace(/#$/, '').trim(),
        sidebar: Array.from(document.querySelectorAll('nav.bd-docs-nav a.reference'))
            .map(a => [a.getAttribute('href'), a.textContent.trim()]),
        links: Array.from(main.querySelectorAll('a[href]')).map(a => a.href),
        ids: Array.from(document.querySelectorAll('[id]')).map(e => e.id),
        headings: Array.from(main.querySelectorAll('section > h2, section > h3, section > h4'))
            .map(h => h.closest('section').id),
        toc_links: toc ? Array.from(toc.querySelectorAll('a[href^="#"]'))
            .map(a => a.getAttribute('href').slice(1)) : [],
        toc_visible: !!(tocRect && tocRect.width > 0 && tocRect.left < window.innerWidth
                        && getComputedStyle(toc).visibility !== 'hidden'),
        api_entries: main.querySelectorAll('a.showdoc-source').length,
        math: main.querySelectorAll('mjx-container').length,
        math_errors: main.querySelectorAll('mjx-merror, merror, [data-mjx-error]').length,
        math_sources: main.querySelectorAll('.math, span.math').length,
        raw_tex: raw,
        clipped: clipped,
        figures: Array.from(main.querySelectorAll('div.cell_output img, figure img'))
            .map(i => [i.getAttribute('src'), i.naturalWidth]),
        copy_buttons: document.querySelectorAll('button.copybtn').length,
        code_blocks: main.querySelectorAll('div.highlight pre').length,
        prev_next: Array.from(document.querySelectorAll('.prev-next-area a')).map(a => a.className),
        source_link: (main.querySelector('.post-meta a[href*="kexue.fm/archives/"]') || {}).href || null,
        original_title: (main.querySelector('.post-meta a[href*="kexue.fm/archives/"]')
                         || {textContent: ''}).textContent,
        claims: Array.from(main.querySelectorAll('div.claim')).map(d => d.id),
        provenance: (main.querySelector('.post-meta .provenance') || {textContent: ''}).textContent.trim(),
        code_scroll: Array.from(main.querySelectorAll('div.highlight pre'))
            .filter(p => !p.closest('.cell_output') && p.checkVisibility() && p.scrollWidth > p.clientWidth + 1)
            .map(p => p.textContent.split('\\n').reduce((a, l) => l.length > a.length ? l : a, '').slice(0, 110)),
        code_px: (p => p ? parseFloat(getComputedStyle(p).fontSize) : null)(main.querySelector('div.highlight pre')),
        code_cols: (p => {
            if (!p) return null;
            const s = document.createElement('span'), cs = getComputedStyle(p);
            s.textContent = 'x'.repeat(100); p.appendChild(s);
            const w = s.getBoundingClientRect().width; s.remove();
            return Math.floor((p.clientWidth - parseFloat(cs.paddingLeft) - parseFloat(cs.paddingRight)) / w * 100);
        })(main.querySelector('div.highlight pre')),
        column: main.clientWidth - parseFloat(getComputedStyle(main).paddingLeft)
            - parseFloat(getComputedStyle(main).paddingRight),
        images: Array.from(main.querySelectorAll('div.cell_output img, figure img')).map(i => {
            const c = i.closest('figure') && i.closest('figure').querySelector('figcaption');
            return {src: i.getAttribute('src'), natural: i.naturalWidth, width: i.getBoundingClientRect().width,
                    alt: (i.getAttribute('alt') || '').trim(), caption: c ? c.textContent.trim() : ''};
        }),
        eq_no_cue: Array.from(main.querySelectorAll('mjx-container[display="true"]'))
            .filter(e => e.scrollWidth > e.clientWidth + 1
                         && !(scrolls(e) && getComputedStyle(e).backgroundImage.includes('gradient')))
            .map(e => e.textContent.slice(0, 60)),
        claim_padding: Array.from(main.querySelectorAll('div.claim'))
            .map(d => parseFloat(getComputedStyle(d).paddingLeft)),
        catalog: Array.from(main.querySelectorAll('div.catalog table')).map(t => [t.scrollWidth, t.clientWidth,
            Math.round(t.getBoundingClientRect().right - main.getBoundingClientRect().right)]),
        stderr: main.querySelectorAll('div.output.stderr, div.cell_output .stderr').length,
        progress: Array.from(main.querySelectorAll('div.cell_output'))
            .map(o => (o.textContent.match(/.{0,30}\\d+%\\|.{0,30}/) || [''])[0]).filter(t => t),
        arxiv_links: main.querySelectorAll('a[href^="https://arxiv.org/abs/"]').length,
        arxiv_unlinked: unlinked,
        post_links: Array.from(document.querySelectorAll('.post-links a'))
            .map(a => [a.className, a.href, a.hasAttribute('download')]),
        overflow: document.documentElement.scrollWidth - window.innerWidth,
        body_overflow: document.body.scrollWidth - window.innerWidth,
    };
}"""


def _visit(context, url, screenshot=None, full_page=True):
    "Open `url`, wait for MathJax and the images; return facts about the page."
    page = context.new_page()
    errors = []
    page.on(
        'console',
        lambda m: errors.append(f'console.{m.type}: {m.text}') if m.type in ('error', 'warning') else None,
    )
    page.on('pageerror', lambda e: errors.append(f'pageerror: {e}'))
    page.on('requestfailed', lambda r: errors.append(f'requestfailed: {r.url} {r.failure}'))
    resp = page.goto(url, wait_until='load')
    facts = page.evaluate(_FACTS_JS)
    facts.update(status=resp.status if resp else None, errors=errors, url=url)
    if screenshot:
        page.screenshot(path=str(ARTIFACTS / screenshot), full_page=full_page)
    page.close()
    return facts


def _search(context, site_url, term):
    "Results of the site's own (offline, Sphinx) search for `term`: the linked pages, best first."
    page = context.new_page()
    page.goto(urljoin(site_url, f'search.html?q={term}'), wait_until='load')
    page.wait_for_function(
        "() => document.querySelectorAll('#search-results ul.search li').length > 0 || "
        "(document.querySelector('#search-results p') || {}).textContent",
        timeout=30_000,
    )
    page.wait_for_timeout(1000)  # the snippets load after the hits
    hits, snippets = page.evaluate(
        "() => [Array.from(document.querySelectorAll('#search-results ul.search li > a'))"
        ".map(a => new URL(a.href).pathname.replace(/^\\//, '')),"
        "Array.from(document.querySelectorAll('#search-results ul.search li p.context')).map(p => p.textContent)]"
    )
    page.screenshot(path=str(ARTIFACTS / f'search-{term}.png'))
    page.close()
    return hits, snippets


@pytest.fixture(scope='module')
def crawl(site_url):
    "Visit every sidebar page at desktop and phone width, recording every request the pages make."
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    requests, blocked = [], []

    def guard(route):
        if route.request.url.startswith('data:') or urlparse(route.request.url).hostname == '127.0.0.1':
            route.continue_()
        else:
            blocked.append(route.request.url)
            route.abort()

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        desk = browser.new_context(viewport=DESKTOP)
        phone = browser.new_context(viewport=PHONE, device_scale_factor=2, is_mobile=True, has_touch=True)
        for ctx in (desk, phone):
            ctx.route('**/*', guard)
            ctx.on('request', lambda r: requests.append(r.url))
        home = _visit(desk, site_url, screenshot='index-desktop.png', full_page=False)
        pages = {
            'index.html': dict(
                link_text=home['h1'],
                desktop=home,
                phone=_visit(phone, site_url, screenshot='index-phone.png', full_page=False),
            )
        }
        for href, text in home['sidebar']:
            url = urljoin(site_url, href)
            rel = urlparse(url).path.lstrip('/')
            name = rel.replace('/', '_').removesuffix('.html')
            pages[rel] = dict(
                link_text=text,
                desktop=_visit(desk, url, screenshot=f'{name}-desktop.png'),
                phone=_visit(phone, url, screenshot=f'{name}-phone.png', full_page=False),
            )
        found = {t: _search(desk, site_url, t) for t in [*SEARCH_TERMS.values(), *SEARCH_EXTRA]}
        search = {u: found[t][0] for u, t in SEARCH_TERMS.items()}
        # dark mode: the theme switcher's "dark" entry
        pg = desk.new_page()
        pg.goto(urljoin(site_url, 'optim/adax.html'), wait_until='load')
        before = pg.evaluate("() => document.documentElement.dataset.theme")
        pg.click('.theme-switch-button >> visible=true')
        pg.click('.theme-change-button[data-mode="dark"] >> visible=true')
        dark = pg.evaluate(
            "() => [document.documentElement.dataset.theme, getComputedStyle(document.body).backgroundColor]"
        )
        pg.screenshot(path=str(ARTIFACTS / 'adax-dark.png'))
        pg.close()
        # the phone menu, opened
        pg = phone.new_page()
        pg.goto(urljoin(site_url, 'optim/adax.html'), wait_until='load')
        pg.click('button.primary-toggle')
        pg.wait_for_timeout(500)
        menu = pg.evaluate(
            "() => Array.from(document.querySelectorAll('#pst-primary-sidebar-modal nav.bd-docs-nav a.reference'))"
            ".filter(a => a.getBoundingClientRect().width > 0).length"
        )
        pg.screenshot(path=str(ARTIFACTS / 'adax-phone-menu.png'))
        pg.close()
        browser.close()
    return dict(
        home=home,
        pages=pages,
        requests=requests,
        blocked=blocked,
        search=search,
        found=found,
        theme_before=before,
        dark=dark,
        phone_menu_links=menu,
    )


def _posts(crawl):
    "Post pages: topic-folder pages with a source post (the folders' overview pages `00_<topic>` have none)."
    return {u: p for u, p in crawl['pages'].items() if '/' in u and p['desktop']['source_link']}


def test_every_sidebar_link_loads_with_its_title(crawl):
    assert len(crawl['pages']) >= 8, crawl['home']['sidebar']
    bad = {
        u: (p['desktop']['status'], p['link_text'], p['desktop']['h1'], p['desktop']['title'])
        for u, p in crawl['pages'].items()
        if p['desktop']['status'] != 200
        or p['link_text'] != p['desktop']['h1']
        or p['link_text'] not in p['desktop']['title']
    }
    assert not bad, f'pages with a bad status or title (status, link text, h1, <title>): {bad}'


def test_sidebar_is_grouped_by_topic_folder(crawl):
    expected = [
        'core.html',
        'benchmarks.html',
        'claims.html',
        'smoothing/smoothing.html',
        'optim/adax.html',
        'attention/linear_attention.html',
        'dynamics/gradient_flow.html',
    ]
    assert not [u for u in expected if u not in crawl['pages']], sorted(crawl['pages'])
    captions = {
        d.name
        for d in (ROOT / 'nbs').iterdir()
        if d.is_dir() and not d.name.startswith(('_', '.')) and any(d.glob('*.ipynb'))
    }
    html = (DOCS / 'optim' / 'adax.html').read_text(encoding='utf-8')
    shown = set(
        re.findall(
            r'<p aria-level="2" class="caption" role="heading"><span class="caption-text">([^<]+)</span>',
            html,
        )
    )
    assert shown == captions, (shown, captions)
    # every page of a folder is listed under that folder's caption: hrefs sit in the folder
    for href, _ in crawl['home']['sidebar']:
        assert href.count('/') <= 1


def test_internal_links_and_anchors_resolve(crawl, site_url):
    "Every same-site link on every page answers 200, and its #fragment exists on the target page."
    ids = {u: set(p['desktop']['ids']) for u, p in crawl['pages'].items()}
    broken = []
    for u, p in crawl['pages'].items():
        for l in p['desktop']['links']:
            if not l.startswith(site_url):
                continue
            path, _, frag = l[len(site_url) :].partition('#')
            path = path or 'index.html'
            if path in ids:
                if frag and frag not in ids[path]:
                    broken.append(f'{u}: {l} (no #{frag})')
                continue
            try:
                urlopen(l.split('#')[0], timeout=10).close()
            except Exception as e:
                broken.append(f'{u}: {l}: {e}')
    assert not broken, 'broken links:\n' + '\n'.join(broken[:40])


@pytest.mark.parametrize('url', sorted(SEARCH_TERMS))
def test_search_finds_each_post(crawl, url):
    "The post is the best hit apart from the pages that gather every post (Claims, Benchmarks, the index)."
    hits = [h for h in crawl['search'][url] if h not in ('claims.html', 'benchmarks.html', 'index.html')]
    assert hits and hits[0] == url, f'search for {SEARCH_TERMS[url]!r}: {crawl["search"][url][:5]}'


def test_dark_mode_toggles(crawl):
    assert crawl['theme_before'] in ('light', 'dark', 'auto', None)
    theme, bg = crawl['dark']
    assert theme == 'dark', crawl['dark']
    r, g, b = [int(x) for x in re.findall(r'\d+', bg)[:3]]
    assert max(r, g, b) < 80, f'background in dark mode: {bg}'


def test_math_is_typeset_on_every_post_page(crawl):
    posts = _posts(crawl)
    assert len(posts) >= 4, sorted(crawl['pages'])
    for u, p in {**posts, 'core.html': crawl['pages']['core.html']}.items():
        if u in DOCS_ONLY_POSTS:
            continue
        d = p['desktop']
        assert d['math'] > 5 and d['math'] >= d['math_sources'], (u, d['math'], d['math_sources'])
        assert d['math_errors'] == 0 and not d['raw_tex'], (u, d['math_errors'], d['raw_tex'][:5])


def test_figures_load_on_every_page_that_has_them(crawl):
    for u in FIGURE_PAGES:
        assert crawl['pages'][u]['desktop']['figures'], f'no figure on {u}'
    bad = {u: [f for f in p['desktop']['figures'] if f[1] == 0] for u, p in crawl['pages'].items()}
    assert not {u: f for u, f in bad.items() if f}, bad


def test_page_toc_is_visible_at_1280px_and_lists_every_api_entry(crawl):
    for u, p in crawl['pages'].items():
        d = p['desktop']
        if not d['headings']:
            continue
        assert d['toc_visible'], f'{u}: the page table of contents is not visible at {DESKTOP["width"]}px'
        missing = [h for h in d['headings'] if h not in d['toc_links']]
        assert not missing, f'{u}: headings missing from the page table of contents: {missing}'
    for u, p in _posts(crawl).items():  # show_doc entries are headings, hence listed
        if u in DOCS_ONLY_POSTS:
            continue
        assert p['desktop']['api_entries'] > 0 and len(p['desktop']['toc_links']) > p['desktop']['api_entries'], u


def test_post_pages_show_source_post_and_original_title(crawl):
    posts = _posts(crawl)
    overviews = {
        _page_url(p.relative_to(ROOT / 'nbs').as_posix())
        for p in (ROOT / 'nbs').glob('*/00_*.ipynb')
        if p.stem == f'00_{p.parent.name}'
    }
    in_folders = {u for u in crawl['pages'] if '/' in u}
    assert in_folders - set(posts) == overviews | SHARED_PAGES, (
        sorted(in_folders - set(posts)),
        overviews,
    )
    assert DOCS_ONLY_POSTS <= set(posts)
    for u, p in posts.items():
        assert re.match(r'^https://kexue\.fm/archives/\d+$', p['desktop']['source_link']), u
        assert re.search(r'[\u4e00-\u9fff]', p['desktop']['original_title']), (
            u,
            p['desktop']['original_title'],
        )


def test_prev_next_links_and_copy_buttons(crawl):
    for u, p in crawl['pages'].items():
        d = p['desktop']
        assert d['prev_next'], f'{u}: no previous/next links'
        if d['code_blocks']:
            assert d['copy_buttons'] >= d['code_blocks'], (u, d['copy_buttons'], d['code_blocks'])
    assert crawl['pages']['index.html']['desktop']['prev_next'] == ['right-next']


def test_claims_page_lists_every_claim_box(crawl, site_url):
    boxes = {f'{u}#{c}' for u, p in _posts(crawl).items() for c in p['desktop']['claims']}
    assert len(boxes) >= 20, boxes
    links = {
        l[len(site_url) :]
        for l in crawl['pages']['claims.html']['desktop']['links']
        if l.startswith(site_url) and '#claim-' in l
    }
    assert links == boxes, (sorted(boxes - links)[:5], sorted(links - boxes)[:5])
    # the machine-readable ledger is served next to the Claims page, which links it; one record per box
    assert f'{site_url}claims.json' in crawl['pages']['claims.html']['desktop']['links']
    with urlopen(f'{site_url}claims.json', timeout=10) as r:
        ledger = json.loads(r.read().decode('utf-8'))
    assert {f"{r['page']}#{r['anchor']}" for r in ledger['records']} == boxes
    assert len(ledger['records']) == len(boxes)
    from su_notes.core import CLAIM_KINDS, VERDICTS

    for r in ledger['records']:
        assert set(r) == LEDGER_FIELDS and r['kind'] in CLAIM_KINDS and r['verdict'] in VERDICTS, r
        assert re.fullmatch(r'\d+', r['post']) and (ROOT / r['notebook']).is_file(), r
        assert r['torch'] and r['python'] and r['date'] and r['device'], r  # provenance of every record
        assert r['kind'] == 'post' or r['tolerance'], r  # a check states its tolerance
    # the index catalog's Claims column: each post's post claims, how many do not hold, linked to its section
    catalog = crawl['pages']['index.html']['desktop']['links']
    for e in ledger['posts']:
        anchor = 'post-' + re.sub(r'[/_]', '-', e['page'].removesuffix('.html'))  # Sphinx ids: - for _
        assert f'{site_url}claims.html#{anchor}' in catalog, (e['title'], anchor)
        assert anchor in crawl['pages']['claims.html']['desktop']['ids'], anchor
    html = (DOCS / 'index.html').read_text(encoding='utf-8')
    assert not re.search(r'\b1 do not hold', html), 'the catalog says "1 do not hold"'


def test_post_pages_show_the_provenance_of_their_records(crawl):
    "One line under the title: where the page's records were measured (device, torch, Python, date)."
    for u, p in _posts(crawl).items():
        prov = p['desktop']['provenance']
        if not p['desktop']['claims']:
            continue
        assert re.match(
            r'^Checked on (CPU|CUDA)[^,]*, torch \d+\.\d+[^,]*, Python 3\.\d+[^,]*, \d{4}-\d\d-\d\d',
            prov,
        ), (u, prov)


def test_no_console_errors_or_warnings(crawl):
    "Also warnings: MathJax reports a bad configuration only as a console warning."
    errs = {u: p[v]['errors'] for u, p in crawl['pages'].items() for v in ('desktop', 'phone') if p[v]['errors']}
    assert not errs, json.dumps(errs, indent=1)[:4000]


def test_no_request_leaves_localhost(crawl):
    assert len(crawl['requests']) > 50, 'too few requests were recorded'
    outside = [u for u in crawl['requests'] if not u.startswith('data:') and urlparse(u).hostname != '127.0.0.1']
    assert not outside and not crawl['blocked'], f'requests to other hosts: {sorted(set(outside + crawl["blocked"]))}'


def test_phone_width_has_no_horizontal_overflow_and_a_menu(crawl):
    bad = {
        u: (p['phone']['overflow'], p['phone']['body_overflow'])
        for u, p in crawl['pages'].items()
        if p['phone']['overflow'] > 0 or p['phone']['body_overflow'] > 0
    }
    assert not bad, f'pages wider than a {PHONE["width"]}px viewport (document, body overflow in px): {bad}'
    assert crawl['phone_menu_links'] >= 8, 'the site navigation does not open from the phone menu button'


def test_wide_math_and_code_scroll_inside_their_block(crawl):
    bad = {u: p[v]['clipped'] for u, p in crawl['pages'].items() for v in ('desktop', 'phone') if p[v]['clipped']}
    assert not bad, bad


# --------------------------------------------------------------------------------------------------------
# What the reader came for (issue 16): code that fits, figures that read, search, links, the Claims page
# --------------------------------------------------------------------------------------------------------


def test_code_lines_fit_the_column_at_1280px(crawl):
    "Cell inputs, show_doc signatures and Markdown code: a 100-column line shows without scrolling."
    for u, p in crawl['pages'].items():
        d = p['desktop']
        if d['code_px'] is not None:
            assert d['code_px'] >= 12.5 and d['code_cols'] >= COLUMNS, (u, d['code_px'], d['code_cols'])
    bad = {u: p['desktop']['code_scroll'] for u, p in crawl['pages'].items() if p['desktop']['code_scroll']}
    report = '\n'.join(f'{u}: {len(v)} blocks, e.g. {v[0]!r}' for u, v in sorted(bad.items()))
    assert not bad, f'code blocks that scroll at {DESKTOP["width"]}px (lines over {COLUMNS} columns):\n{report}'


def test_figures_fit_the_column_at_their_natural_size(crawl):
    "A figure drawn at most 7 in wide (100 dpi) shows 1:1 at 1280 px; none is wider than the column on a phone."
    bad = {}
    for u, p in crawl['pages'].items():
        d, ph = p['desktop'], p['phone']
        if d['images']:
            assert d['column'] >= FIGURE_PX, (u, d['column'])
        shrunk = [
            f"{i['src']} ({i['natural']} px shown at {i['width']:.0f})"
            for i in d['images']
            if i['width'] < i['natural'] - 1
        ]
        wide = [f"{i['src']} ({i['width']:.0f} px)" for i in ph['images'] if i['width'] > ph['column'] + 1]
        if shrunk or wide:
            bad[u] = shrunk + wide
    assert not bad, 'figures wider than the column (drawn wider than 7 in at 100 dpi):\n' + json.dumps(bad, indent=1)


def test_figures_have_a_caption_and_alt_text(crawl):
    "Each figure has a figcaption (`#| fig-cap:`) and an alt text (`#| fig-alt:`) that is not a file name."
    bad = {}
    for u, p in crawl['pages'].items():
        for i in p['desktop']['images']:
            if not i['caption'] or not i['alt'] or re.search(r'\.(png|jpe?g|svg)$|_images/', i['alt']):
                bad.setdefault(u, []).append(i['src'])
    report = '\n'.join(
        f'{u}: {len(v)} of {len(crawl["pages"][u]["desktop"]["images"])}' for u, v in sorted(bad.items())
    )
    assert not bad, f'figures without a caption or an alt text:\n{report}'


def test_wide_equations_scroll_with_a_visible_cue(crawl):
    "A display equation wider than its block scrolls inside it, with edge shadows that show there is more."
    bad = {u: p[v]['eq_no_cue'] for u, p in crawl['pages'].items() for v in ('desktop', 'phone') if p[v]['eq_no_cue']}
    assert not bad, bad


def test_claim_boxes_have_padding_and_the_catalog_fits(crawl):
    pads = [x for p in crawl['pages'].values() for x in p['desktop']['claim_padding']]
    assert pads and min(pads) >= 6, f'claim boxes without padding (px): {sorted(set(pads))[:5]}'
    cat = crawl['pages']['index.html']['desktop']['catalog']
    assert cat and all(sw <= cw + 1 and right <= 1 for sw, cw, right in cat), f'catalog clipped at 1280px: {cat}'


def test_no_progress_bars_or_stderr_outputs(crawl):
    bad = {
        u: (p['desktop']['stderr'], p['desktop']['progress'][:3])
        for u, p in crawl['pages'].items()
        if p['desktop']['stderr'] or p['desktop']['progress']
    }
    assert not bad, f'pages with stderr output blocks or progress bars (count, text): {bad}'


def test_search_finds_chinese_terms(crawl):
    "Every page carries its post's Chinese title; jieba splits it into words the index knows."
    hits = crawl['found']['梯度'][0]
    assert set(hits) & set(SEARCH_TERMS), hits


def test_search_folds_accents(crawl):
    "'Frechet' finds what 'Fréchet' finds: the Fréchet-distance helper in core and the pages that use it."
    plain, accented = crawl['found']['Frechet'][0], crawl['found']['Fréchet'][0]
    assert 'core.html' in plain and plain == accented, (plain, accented)


def test_search_ranks_a_post_above_the_pages_that_gather_every_post(crawl):
    hits = crawl['found']['AdaX'][0]
    assert hits[:1] == ['optim/adax.html'], hits[:5]


def test_search_snippets_show_no_raw_math(crawl):
    raw = [s[:100] for _, snippets in crawl['found'].values() for s in snippets if re.search(r'\\[()[\]]|\$\$', s)]
    assert not raw, raw[:5]


def test_arxiv_ids_are_links(crawl):
    bad = {u: p['desktop']['arxiv_unlinked'] for u, p in crawl['pages'].items() if p['desktop']['arxiv_unlinked']}
    assert not bad, f'arXiv ids left as text: {bad}'
    assert sum(p['desktop']['arxiv_links'] for p in crawl['pages'].values()) >= 10


def _bench_posts() -> dict:
    "Post page → the Benchmarks page's label of its first table, from the page's source (nbs/benchmarks.md)."
    md = (ROOT / 'nbs' / 'benchmarks.md').read_text(encoding='utf-8')
    hits = re.findall(r'^\((bench-[\w-]+)\)=\n###.*\n+Post: \[[^\]]*\]\(([^)\s]+\.ipynb)\)', md, re.M)
    return {_page_url(nb): label for label, nb in reversed(hits)}


def test_post_pages_link_notebook_source_claims_and_benchmark(crawl, site_url):
    from nbdev.config import get_config

    git = get_config(path=ROOT).git_url.rstrip('/') + '/blob/main/nbs/'
    notebooks = {_page_url(p.relative_to(ROOT / 'nbs').as_posix()): p for p in (ROOT / 'nbs').rglob('[!_]*.ipynb')}
    bench, ids = _bench_posts(), {u: set(p['desktop']['ids']) for u, p in crawl['pages'].items()}
    for u, p in _posts(crawl).items():
        links = {cls.split('-')[-1]: (href, dl) for cls, href, dl in p['desktop']['post_links']}
        assert {'notebook', 'source', 'claims'} <= set(links), (u, links)
        nb = notebooks[u]
        href, download = links['notebook']
        assert download and href == urljoin(site_url + u, nb.name), (u, href)
        with urlopen(href, timeout=10) as r:
            assert json.loads(r.read().decode('utf-8'))['cells'], href  # the notebook itself, served
        assert links['source'][0] == git + nb.relative_to(ROOT / 'nbs').as_posix(), links['source']
        path, _, frag = links['claims'][0][len(site_url) :].partition('#')
        assert path == 'claims.html' and frag in ids['claims.html'], links['claims']
        if u in bench:
            assert links['bench'][0] == f'{site_url}benchmarks.html#{bench[u]}', (u, links.get('bench'))
            assert bench[u] in ids['benchmarks.html'], bench[u]
        else:
            assert 'bench' not in links, u
    # ... and the Benchmarks page links back to each post it measures
    back = set(crawl['pages']['benchmarks.html']['desktop']['links'])
    assert bench and not [u for u in bench if f'{site_url}{u}' not in back], sorted(bench)


def test_llms_txt_lists_every_page_and_the_api(crawl, site_url):
    "llmstxt.org's format, as nbdev writes it: # name, > summary, sections of `- [Title](url): description`."
    with urlopen(f'{site_url}llms.txt', timeout=10) as r:
        text = r.read().decode('utf-8')
    lines = text.split('\n')
    assert lines[0] == '# su_notes' and lines[2].startswith('> ') and '\n## API\n' in text, lines[:4]
    items = re.findall(r'^- \[([^\]]+)\]\(([^)\s]+)\)', text, re.M)
    urls = {urlparse(url).path.lstrip('/').removeprefix('su_notes/') for _, url in items}
    missing = [u for u in crawl['pages'] if u not in urls]
    assert not missing, missing


_CLAIMS_JS = """async () => {
    if (window.MathJax && MathJax.startup && MathJax.startup.promise) await MathJax.startup.promise;
    const main = document.querySelector('article.bd-article');
    const records = Array.from(main.querySelectorAll('div.record[data-verdict]'));
    const table = main.querySelector('table');
    const first = records[0];
    return {
        table_first: !!(table && first && (table.compareDocumentPosition(first) & Node.DOCUMENT_POSITION_FOLLOWING)),
        header: table ? Array.from(table.querySelectorAll('th')).map(th => th.textContent.trim()) : [],
        rows: table ? Array.from(table.querySelectorAll('tbody tr')).map(tr => (tr.querySelector('a') || {}).href) : [],
        verdicts: records.map(r => r.dataset.verdict),
        kinds: records.map(r => r.dataset.kind),
        math: main.querySelectorAll('mjx-container').length,
        raw_tex: Array.from(main.querySelectorAll('div.record')).map(r => r.textContent)
            .filter(t => /[$][^$]+[$]|\\\\[(\\[]/.test(t)).map(t => t.slice(0, 80)),
        overflow: document.documentElement.scrollWidth - window.innerWidth,
        font_px: first ? parseFloat(getComputedStyle(first).fontSize) : 0,
    };
}"""
_VISIBLE_JS = (
    "() => Array.from(document.querySelectorAll('div.record[data-verdict]')).filter(r => r.offsetParent !== null)"
)


@pytest.fixture(scope='module')
def claims_ui(site_url):
    "The Claims page at 1280 px (with its verdict and kind filters set by clicks) and at 390 px."
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        pg = browser.new_context(viewport=DESKTOP).new_page()
        pg.goto(urljoin(site_url, 'claims.html'), wait_until='load')
        facts, filtered = pg.evaluate(_CLAIMS_JS), {}
        # a verdict alone (the bad news first), a kind alone, both, then the reset; only values the page has
        verdict = next(v for v in ('does not hold', 'caveat', 'untested', 'holds') if v in facts['verdicts'])
        kind = 'check' if 'check' in facts['kinds'] else 'post'
        for verdict, kind in [(verdict, ''), ('', kind), (facts['verdicts'][0], facts['kinds'][0]), ('', '')]:
            pg.locator('#claim-filter label', has_text='Verdict').locator('select').select_option(verdict)
            pg.locator('#claim-filter label', has_text='Kind').locator('select').select_option(kind)
            filtered[verdict, kind] = pg.evaluate(
                f'() => ({_VISIBLE_JS})().map(r => [r.dataset.verdict, r.dataset.kind])'
            )
        pg.screenshot(path=str(ARTIFACTS / 'claims-desktop.png'))
        phone = browser.new_context(viewport=PHONE, device_scale_factor=2, is_mobile=True, has_touch=True).new_page()
        phone.goto(urljoin(site_url, 'claims.html'), wait_until='load')
        on_phone = phone.evaluate(_CLAIMS_JS)
        phone.screenshot(path=str(ARTIFACTS / 'claims-phone.png'))
        browser.close()
    return dict(desktop=facts, filtered=filtered, phone=on_phone)


def test_claims_page_opens_with_the_per_post_summary(claims_ui, crawl, site_url):
    d = claims_ui['desktop']
    assert d['table_first'] and d['header'][:1] == ['Post'], d['header']
    posts = {f'{site_url}{u}' for u in _posts(crawl)}
    assert posts <= set(d['rows']), sorted(posts - set(d['rows']))[:5]


def test_claims_page_lists_failures_before_caveats_and_untested(claims_ui):
    v = claims_ui['desktop']['verdicts']
    assert v, 'no records on the Claims page'
    later = [i for i, x in enumerate(v) if x in ('caveat', 'untested')]
    if 'does not hold' in v and later:
        assert v.index('does not hold') < later[0], v[:10]


def test_claims_page_filters_by_verdict_and_kind(claims_ui):
    d, f = claims_ui['desktop'], claims_ui['filtered']
    pairs = list(zip(d['verdicts'], d['kinds']))
    for (verdict, kind), shown in f.items():
        want = [p for p in pairs if (not verdict or p[0] == verdict) and (not kind or p[1] == kind)]
        assert sorted(map(tuple, shown)) == sorted(want), (verdict, kind, len(shown), len(want))
    assert len(f['', '']) == len(pairs) and len(f) == 4 and min(map(len, f.values())) < len(pairs), f.keys()


def test_claims_page_typesets_math_and_reads_on_a_phone(claims_ui):
    d, ph = claims_ui['desktop'], claims_ui['phone']
    assert d['math'] > 0 and not d['raw_tex'], (d['math'], d['raw_tex'][:3])
    assert ph['overflow'] <= 0 and ph['font_px'] >= 12, (ph['overflow'], ph['font_px'])


def test_every_post_page_shows_its_implementation():
    "Each post page shows the code of at least one public name it documents (`#| exports`), not only its doc entry."
    import html as html_lib

    from su_notes._modidx import d as modidx

    documented = {}
    for syms in modidx['syms'].values():
        for name, (url, _) in syms.items():
            documented.setdefault(url.split('#')[0], set()).add(name.rsplit('.', 1)[-1])
    missing = {}
    for url in sorted(set(SEARCH_TERMS) - DOCS_ONLY_POSTS):
        page = (DOCS / url).read_text(encoding='utf-8')
        shown = ' '.join(re.findall(r'<div class="cell_input.*?</pre>', page, re.S))
        code = html_lib.unescape(re.sub(r'<[^>]+>', '', shown))
        defined = set(re.findall(r'^\s*(?:def|class)\s+(\w+)', code, re.M))
        if not defined & documented.get(url, set()):
            missing[url] = sorted(documented.get(url, set()))[:5]
    assert not missing, f'post pages that show none of their public code: {missing}'
