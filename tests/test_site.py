"""The documentation site: build_docs' helpers (fast, no build needed), one tiny Sphinx build, and the rendered
`_docs/` opened in headless Chromium (Debian's /usr/bin/chromium driven by Playwright; `make browser` installs it).

The browser tests need `make docs` (or the quick build of `make test`) to have run: without `_docs/` they FAIL
(they do not skip). Screenshots go to tests/artifacts/."""

import functools
import http.server
import importlib.util
import json
import os
import re
import socketserver
import sys
import threading
from pathlib import Path
from urllib.parse import urljoin, urlparse
from urllib.request import urlopen

import nbformat
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
    try:
        yield _load_build_docs()
    finally:
        os.chdir(cwd)


# --------------------------------------------------------------------------------------------------------
# build_docs helpers
# --------------------------------------------------------------------------------------------------------


def test_page_urls_and_source_names_keep_quarto_urls(bd):
    assert bd.page_url('optim/10_adax.ipynb') == 'optim/adax.html'
    assert bd.page_url('index.ipynb') == 'index.html' and bd.page_url('00_core.ipynb') == 'core.html'
    assert bd.page_url('benchmarks.md') == 'benchmarks.html'  # quarto keeps a .md page's name
    assert bd.page_url('a/20_B.ipynb') == 'a/b.html'  # nbdev lower-cases
    assert bd.page_url('x/page.md', {'output-file': 'other.html'}) == 'x/other.html'
    # the MyST source is named by the URL, so Sphinx writes the page where quarto would
    assert bd.source_name('optim/10_adax.ipynb') == 'optim/adax.ipynb'
    assert bd.source_name('benchmarks.md') == 'benchmarks.md'
    assert bd.source_name('optim/00_optim.ipynb') == 'optim/optim.ipynb'


def _touch_nb(p: Path, title: str):
    p.parent.mkdir(parents=True, exist_ok=True)
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell(f'# {title}\n\n> about {title}')])
    nbformat.write(nb, p)


def test_sidebar_derivation_follows_nbdev(bd, tmp_path):
    for rel in [
        'index.ipynb',
        '00_core.ipynb',
        'optim/10_adax.ipynb',
        'optim/20_clipping.ipynb',
        'attention/10_linear_attention.ipynb',
        'smoothing/10_smoothing.ipynb',
        'dynamics/10_gradient_flow.ipynb',
        '_scratch.ipynb',
        'optim/_draft.ipynb',
        '_hidden/10_x.ipynb',
    ]:
        _touch_nb(tmp_path / rel, rel)
    (tmp_path / 'benchmarks.md').write_text('---\ntitle: Benchmarks\n---\n\ntext\n')
    (tmp_path / '_quarto.yml').write_text('project:\n  type: website\n')
    contents = bd.derive_sidebar(tmp_path)
    assert contents == [
        'index.ipynb',
        '00_core.ipynb',
        'benchmarks.md',
        {'section': 'attention', 'contents': ['attention/10_linear_attention.ipynb']},
        {'section': 'dynamics', 'contents': ['dynamics/10_gradient_flow.ipynb']},
        {'section': 'optim', 'contents': ['optim/10_adax.ipynb', 'optim/20_clipping.ipynb']},
        {'section': 'smoothing', 'contents': ['smoothing/10_smoothing.ipynb']},
    ]
    assert len(bd.sidebar_files(contents)) == 8
    src2doc = {f: bd.source_name(f) for f in bd.sidebar_files(contents)}
    toc = bd.toctree_markdown(contents, src2doc)
    assert toc.startswith('```{toctree}\n:hidden:\n\ncore\nbenchmarks\nclaims\n```')  # the Claims page is top level
    assert ':caption: optim\n\noptim/adax\noptim/clipping\n```' in toc and toc.count('{toctree}') == 5


def _code(src, outputs=()):
    return nbformat.v4.new_code_cell(src, outputs=list(outputs))


def test_cell_skip_reason_mirrors_nbdev(bd):
    skip = bd.cell_skip_reason
    assert skip(_code('x = 1')) is None
    assert skip(nbformat.v4.new_markdown_cell('#| cuda')) is None
    assert skip(_code('#| hide\nimport nbdev; nbdev.nbdev_export()')) == 'nbdev_export'
    assert skip(_code('#| eval: false\nboom()')) == 'eval: false'
    assert skip(_code('#|eval:false\nboom()')) == 'eval: false'
    assert skip(_code('#| cuda\nx.cuda()'), has_cuda=False) == 'cuda'
    assert skip(_code('#| cuda\nx.cuda()'), has_cuda=True) is None
    assert skip(_code('# | slow\ntrain()')) is None  # slow cells run in the docs build
    assert skip(_code('#| slow\ntrain()'), skip_slow=True) == 'slow'  # ... unless --skip-slow
    assert skip(_code('x = 1\n#| cuda')) is None  # directives only lead a cell


def test_cell_options_and_heading_ids(bd):
    opts, src = bd.split_cell_options('#| echo: false\n#| output: asis\n#| fig-cap: "A *figure*"\nshow_doc(f)\n')
    assert opts == {'echo': False, 'output': 'asis', 'fig-cap': 'A *figure*'} and src == 'show_doc(f)\n'
    assert bd.split_cell_options('x = 1  #| not an option\n') == ({}, 'x = 1  #| not an option\n')
    assert bd.pandoc_id('GaussianMixture.log_prob') == 'gaussianmixture.log_prob'  # nbdev's doc links use these
    assert bd.pandoc_id('1. Setting and notation') == 'setting-and-notation'
    assert bd.pandoc_id('Why $\\tau \\to 0$?') == 'why-tau-to-0'
    assert bd.pandoc_id('???') == 'section'


SITE = 'https://su-notes.github.io/su_notes'


def _links(bd):
    return bd.LinkMap(
        {
            'index.ipynb': 'index.ipynb',
            '00_core.ipynb': 'core.ipynb',
            'benchmarks.md': 'benchmarks.md',
            'optim/10_adax.ipynb': 'optim/adax.ipynb',
            'attention/10_linear_attention.ipynb': 'attention/linear_attention.ipynb',
        },
        SITE,
    )


def test_links_become_checked_source_links(bd):
    L = _links(bd)
    t = L.target
    assert (
        t(
            f'{SITE}/attention/linear_attention.html#attention_matrix',
            'attention/10_linear_attention.ipynb',
        )
        == 'linear_attention.ipynb#attention_matrix'
    )  # nbdev's absolute doc link
    assert t(f'{SITE}/core.html#check_arg', 'optim/10_adax.ipynb') == '../core.ipynb#check_arg'
    assert t('00_core.ipynb', 'index.ipynb') == 'core.ipynb'  # a link written in a notebook
    assert t('../optim/10_adax.ipynb#adax', 'attention/10_linear_attention.ipynb') == '../optim/adax.ipynb#adax'
    assert t('benchmarks.md', 'index.ipynb') == 'benchmarks.md'
    assert t('../benchmarks.html', 'optim/10_adax.ipynb') == '../benchmarks.md'
    assert t('https://kexue.fm/archives/7387', 'index.ipynb') == 'https://kexue.fm/archives/7387'
    assert t('#local', 'index.ipynb') == '#local'
    assert t('missing.ipynb', 'index.ipynb') == 'missing.ipynb'  # left for Sphinx to report
    md = L.markdown(
        '[source](https://x.org/a.py#L3){target="_blank" style="float:right; font-size:smaller"}\n\n'
        '### f {#custom}\n\n```python\ndef f(\n    x, # see [`g`](' + SITE + '/core.html#g)\n)\n```\n'
        f'See [`g`]({SITE}/core.html#g).',
        'optim/10_adax.ipynb',
        showdoc=True,
    )
    assert md.split('\n')[0] == '[source](https://x.org/a.py#L3){.showdoc-source}'
    assert '### f\n' in md and '    x, # see `g`\n' in md  # no link syntax inside code
    assert md.endswith('See [`g`](../core.ipynb#g).')


def _rec(claim, measured, verdict='holds', *, kind='post', device='cpu', **kw):
    "A ledger record exactly as a notebook cell emits it (su_notes.core.record_claim's JSON), pinned provenance."
    from su_notes.core import record_claim

    js = record_claim(claim, measured, verdict, kind=kind, device=device, **kw).to_json()
    js['provenance'].update(torch='2.13.0', python='3.11.7', date='2026-12-07')
    return json.loads(json.dumps(js))  # as read back from the notebook's JSON


def test_myst_page_applies_cell_options_show_doc_and_claims(bd):
    claim = _rec('x is small', 'x = 1e-3', 'does not hold', seeds=[0, 1])
    check = _rec(
        'ours equals torch.optim.AdamW',
        'max |Δ| = 2e-8',
        kind='check',
        tolerance='rtol 1e-6, atol 1e-8',
    )
    nb = nbformat.v4.new_notebook(
        cells=[
            nbformat.v4.new_raw_cell(
                '---\ntitle: AdaX\ndescription: D\nsource: https://kexue.fm/archives/7387\n'
                'original_title: AdaX优化器浅析\ndate: 2020-05-11\n---\n'
            ),
            nbformat.v4.new_markdown_cell(f'## Long runs\n\nSee [`check_arg`]({SITE}/core.html#check_arg).'),
            _code(
                '#| echo: false\nprint(1)',
                [nbformat.v4.new_output('stream', name='stdout', text='1\n')],
            ),
            _code(
                '#| output: false\nprint(2)',
                [nbformat.v4.new_output('stream', name='stdout', text='2\n')],
            ),
            _code('#| include: false\nprint(3)'),
            _code('#| code-fold: show\ndef f(): pass'),
            _code(
                '#| echo: false\n#| output: asis\nshow_doc(f)',
                [
                    nbformat.v4.new_output(
                        'display_data',
                        data={'text/markdown': '---\n\n### f\n\n> f()', 'text/plain': '<f>'},
                    )
                ],
            ),
            _code(
                'assert True\nrecord_claim(...)',
                [
                    nbformat.v4.new_output(
                        'display_data',
                        data={
                            bd.CLAIM_MIME: claim,
                            'text/markdown': '**claim**',
                            'text/plain': 'claim',
                        },
                    )
                ],
            ),
            _code(
                'assert_close(a, b)\nrecord_claim(..., kind="check")',
                [
                    nbformat.v4.new_output(
                        'display_data',
                        data={bd.CLAIM_MIME: json.dumps(check), 'text/plain': 'check'},
                    )
                ],
            ),  # JSON as a string
        ]
    )
    out, claims, not_run = bd.myst_page(nb, 'optim/10_adax.ipynb', _links(bd))
    md = [c.source for c in out.cells if c.cell_type == 'markdown']
    assert (
        md[0].startswith('# AdaX\n\n{.post-lead}\nD\n') and '[AdaX优化器浅析](https://kexue.fm/archives/7387)' in md[0]
    )
    # the post's provenance line ends its title block, aggregated from its records
    assert '- [Checked on CPU, torch 2.13.0, Python 3.11.7, 2026-12-07 (1 claim, 1 check).]{.provenance}\n:::' in md[0]
    assert md[1].endswith('See [`check_arg`](../core.ipynb#check_arg).')
    code = [c for c in out.cells if c.cell_type == 'code']
    assert [c.source for c in code] == [
        'print(1)',
        'print(2)',
        'def f(): pass',
        'assert True\nrecord_claim(...)',
        'assert_close(a, b)\nrecord_claim(..., kind="check")',
    ]
    assert code[0].metadata.tags == ['remove-input'] and code[0].outputs[0].text == '1\n'
    assert code[1].outputs == [] and code[2].metadata.tags == ['hide-input']
    assert md[2] == '### f\n\n> f()'  # show_doc output inlined: a heading of the page
    assert code[3].outputs == [] and code[4].outputs == []
    assert md[3] == (
        '(claim-optim-adax-1)=\n:::{container} claim claim-does-not-hold claim-kind-post\n'
        '**✗ Claim — does not hold.** x is small\n\n*Measured:* x = 1e-3  \n*Seeds:* 0, 1\n:::'
    )
    assert md[4] == (
        '(claim-optim-adax-2)=\n:::{container} claim claim-holds claim-kind-check\n'
        '**✓ Check — holds.** ours equals torch.optim.AdamW\n\n*Measured:* max |Δ| = 2e-8  \n'
        '*Tolerance:* rtol 1e-6, atol 1e-8\n:::'
    )
    assert claims == [
        dict(claim, page='optim/adax.ipynb', section='f', label='claim-optim-adax-1'),
        dict(check, page='optim/adax.ipynb', section='f', label='claim-optim-adax-2'),
    ]
    assert not_run == {'post': 0, 'check': 0}
    # records in cells the build skipped are counted by kind, not lost
    note = bd._note_output('slow')
    nb.cells.append(
        _code(
            '#| slow\nrecord_claim("a", f"{x}", kind="post")\nrecord_claim("b", f"{y}", kind="check",'
            ' tolerance=1e-6)\nfor v in vs: record_claim("c", f"{v}", v_rule(v), kind="post")',
            [note],
        )
    )
    out, _, not_run = bd.myst_page(nb, 'optim/10_adax.ipynb', _links(bd))
    assert not_run == {'post': 2, 'check': 1}
    assert '(1 claim, 1 check; 3 more in cells this build did not run).]{.provenance}' in out.cells[0].source
    # an overview page (no source post) shows a record but does not put it in the ledger, and has no provenance
    nb.cells[0] = nbformat.v4.new_raw_cell('---\ntitle: optim\n---\n')
    out, claims, not_run = bd.myst_page(nb, 'optim/10_adax.ipynb', _links(bd))
    assert claims == [] and any(c.source.startswith('(claim-optim-adax-1)=') for c in out.cells)
    assert not_run == {'post': 0, 'check': 0} and 'provenance' not in out.cells[0].source


def test_claim_boxes_for_every_verdict_and_bad_records(bd):
    from su_notes.core import VERDICTS, CLAIM_KINDS, CLAIM_MIME

    assert (bd.VERDICTS, bd.CLAIM_KINDS, bd.CLAIM_MIME) == (
        VERDICTS,
        CLAIM_KINDS,
        CLAIM_MIME,
    )  # kept in step
    for v in VERDICTS:
        box = bd.claim_markdown(dict(_rec('c', 'no faces' if v == 'untested' else '1', v), label='claim-p-1'))
        assert f'claim-{v.replace(" ", "-")} claim-kind-post' in box and f'Claim — {v}.' in box
    assert '**? Claim — untested.**' in bd.claim_markdown(dict(_rec('FID', 'a 2-D toy', 'untested'), label='l'))
    # records written before kinds existed are claims of the post
    old = dict(claim='x', measured='1', verdict='caveat', label='l')
    assert bd.record_kind(old) == 'post' and '**≈ Claim — caveat.** x' in bd.claim_markdown(old)
    with pytest.raises(ValueError, match="Invalid verdict in a claim record: 'maybe'"):
        bd.claim_markdown(dict(old, verdict='maybe'))
    assert bd.seeds_text([]) == '' and bd.seeds_text([3, 1]) == '3, 1'
    assert bd.seeds_text(range(40)) == '40 seeds (0–39)' and bd.seeds_text([0, 5, 9, 11, 12]) == '5 seeds'


def test_claim_calls_counts_records_of_cells_not_run(bd):
    cc = bd.claim_calls
    assert cc('record_claim("a", f"{x}", kind="post")\nsu.record_claim("b", "1", kind="check", tolerance=1)') == {
        'post': 1,
        'check': 1,
    }
    assert cc('%time record_claim("a", "1", kind="check", tolerance=1)\n!ls\nx = 1') == {
        'post': 0,
        'check': 1,
    }
    assert cc('%%time\nfor k in ks:\n    record_claim("a", "1", kind=k)') == {
        'post': 1,
        'check': 0,
    }  # not a literal
    assert cc('x = (\nrecord_claim("a (", kind="check", tolerance=1)') == {
        'post': 0,
        'check': 1,
    }  # not Python
    assert cc('"record_claim" in s; record_claims(1)') == {'post': 0, 'check': 0}


def test_provenance_line_aggregates_devices_versions_and_dates(bd):
    a = _rec('a', '1')
    b = _rec('b', '2', kind='check', tolerance=1e-6, device='cuda:0')
    b['provenance'].update(torch='2.12.1', date='2026-12-09')
    assert bd.provenance_line([a]) == 'Checked on CPU, torch 2.13.0, Python 3.11.7, 2026-12-07 (1 claim, 0 checks).'
    assert bd.provenance_line([b, a, a]) == (
        'Checked on CPU and CUDA, torch 2.12.1 and 2.13.0, Python 3.11.7, 2026-12-07 to 2026-12-09 (2 claims, 1 check).'
    )
    assert bd.provenance_line([dict(claim='x', measured='1', verdict='holds')]) is None  # no provenance recorded


def _ledger_posts(bd):
    recs = [
        dict(_rec('a | b', '1.0'), section='S `x`', label='claim-p-1'),
        dict(
            _rec('c', '2 vs 3', 'does not hold', seeds=range(10), values={'p': 0.01}),
            section='T',
            label='claim-p-2',
        ),
        dict(_rec('faces', 'a 2-D toy has no faces', 'untested'), section='T', label='claim-p-3'),
        dict(
            _rec('ours = torch', 'max |Δ| = 1e-9', kind='check', tolerance='rtol 1e-6'),
            section='U',
            label='claim-p-4',
        ),
    ]
    return [
        dict(
            rel='t/10_p.ipynb',
            title='Post P',
            doc='t/p.ipynb',
            source='https://kexue.fm/archives/1',
            original_title='原题',
            claims=recs,
            not_run={'post': 2, 'check': 1},
        ),
        dict(
            rel='t/20_q.ipynb',
            title='Post Q',
            doc='t/q.ipynb',
            source='https://kexue.fm/archives/22',
            original_title='题',
            claims=[],
            not_run={'post': 0, 'check': 0},
        ),
    ]


def test_claims_page_and_catalog_column(bd):
    posts = _ledger_posts(bd)
    page = bd.claims_page(posts)
    # post claims are counted by verdict; checks are counted apart, never as claims
    assert (
        '3 claims across 2 posts: 1 holds, 1 does not hold, 1 untested; 1 check against peer libraries or closed forms.'
    ) in page
    assert '| [holds]{.verdict .verdict-holds} | a \\| b {ref}`§ S x <claim-p-1>` | 1.0 |' in page
    assert '| [untested]{.verdict .verdict-untested} | faces {ref}`§ T <claim-p-3>` | a 2-D toy has no faces |' in page
    assert '[does not hold]{.verdict .verdict-does-not-hold}' in page
    assert '**Verified against**' in page and ':::{container} claims-table checks-table' in page
    assert (
        '| [holds]{.verdict .verdict-holds} | ours = torch {ref}`§ U <claim-p-4>` | max \\|Δ\\| = 1e-9 | rtol 1e-6 |'
        in page
    )
    claims_table = page.split('**Verified against**')[0]
    assert 'claim-p-4' not in claims_table and 'claim-p-1' not in page.split('**Verified against**')[1]
    assert 'those cells record 2 more claims and 1 more check' in page
    assert '2 more claims and 1 more check are recorded in cells this build did not run' in page
    assert '3 claims: 1 holds, 1 does not hold, 1 untested; 1 check.' in page
    assert page.count('No claims recorded yet.') == 1
    assert '<a class="reference external" href="claims.json">claims.json</a>' in page
    assert 'claims.json' not in bd.claims_page(posts, ledger_href=None)
    cat = (
        '| # | Post | Status |\n|---|---|---|\n| 1 | [p](t/p.ipynb) | implemented |\n| 2 | planned | planned |\n\nafter'
    )
    counts = {'t/p.ipynb': bd.post_counts(posts[0]['claims'], {'post': 0, 'check': 5})}
    out = bd.catalog_with_claims(cat, counts, {'t/p.ipynb': 'claims.md#post-p'})
    assert out.split('\n')[:6] == [
        ':::{container} catalog',
        '| # | Post | Status | Claims |',
        '|---|---|---|---|',
        '| 1 | [p](t/p.ipynb) | implemented | [3 claims: 1 do not hold, 1 untested](claims.md#post-p) |',
        '| 2 | planned | planned | — |',
        ':::',
    ]
    assert out.endswith(':::\n\nafter')
    c = bd.post_counts(posts[0]['claims'], posts[0]['not_run'])
    assert '[3 claims: 1 do not hold, 1 untested (+2 in cells not run)](x)' in bd.catalog_with_claims(
        cat, {'t/p.ipynb': c}, {'t/p.ipynb': 'x'}
    )
    assert bd.catalog_with_claims(cat.split('\n\n')[0], {}, {}).endswith('| — |\n:::')  # a table ending the cell
    one = bd.post_counts([posts[0]['claims'][0]])
    assert bd.catalog_cell(one, 'x') == '[1 claim: 0 do not hold, 0 untested](x)' and bd.catalog_cell(None, 'x') == '—'


def test_claims_ledger_json_and_summary(bd, tmp_path, capsys):
    posts = _ledger_posts(bd)
    led = bd.claims_ledger(posts, 'nbs', built='2026-12-07T00:00:00+00:00')
    assert (led['format'], led['version']) == ('su_notes claims ledger', 1)
    assert led['counts'] == {
        'post': 3,
        'holds': 1,
        'caveat': 0,
        'does not hold': 1,
        'untested': 1,
        'check': 1,
        'not_run': {'post': 2, 'check': 1},
    }
    assert [(e['post'], e['notebook'], e['page']) for e in led['posts']] == [
        ('1', 'nbs/t/10_p.ipynb', 't/p.html'),
        ('22', 'nbs/t/20_q.ipynb', 't/q.html'),
    ]
    r = led['records'][1]
    assert set(r) == set(bd.LEDGER_FIELDS)
    assert r == dict(
        post='1',
        source='https://kexue.fm/archives/1',
        title='Post P',
        notebook='nbs/t/10_p.ipynb',
        page='t/p.html',
        anchor='claim-p-2',
        section='T',
        kind='post',
        claim='c',
        measured='2 vs 3',
        values={'p': 0.01},
        tolerance=None,
        verdict='does not hold',
        seeds=list(range(10)),
        device='cpu',
        torch='2.13.0',
        python='3.11.7',
        date='2026-12-07',
    )
    assert (led['records'][3]['kind'], led['records'][3]['tolerance']) == ('check', 'rtol 1e-6')
    assert bd.archive_id('https://kexue.fm/archives/7387') == '7387' and bd.archive_id(None) is None
    # the summary the lead reports, from the file the site serves
    path = tmp_path / 'claims.json'
    path.write_text(json.dumps(led, ensure_ascii=False))
    summary = bd.claims_summary(path)
    assert summary.startswith(
        '3 claims across 2 posts: 1 holds, 1 does not hold, 1 untested; 1 check; in cells not run: 2 claims, 1 check.'
    )
    assert (
        '| Post P | 3 | 1 | 0 | 1 | 1 | 1 | 2/1 |' in summary and '| Post Q | 0 | 0 | 0 | 0 | 0 | 0 | 0/0 |' in summary
    )
    assert '| **all 2 posts** | 3 | 1 | 0 | 1 | 1 | 1 | 2/1 |' in summary
    assert bd.main(['--claims-summary', str(path)]) == 0 and capsys.readouterr().out == summary + '\n'
    # the ledger of earlier builds (a list of posts, records without a kind: all counted as claims, as then)
    old = [
        dict(
            title='Old',
            claims=[
                dict(claim='x', measured='1', verdict='holds'),
                dict(claim='y', measured='2', verdict='caveat'),
            ],
            not_run=3,
        )
    ]
    path.write_text(json.dumps(old))
    assert bd.claims_summary(path).startswith(
        '2 claims across 1 post: 1 holds, 1 with a caveat; 0 checks; in cells not run: 3 claims, 0 checks.'
    )
    path.write_text('"nope"')
    with pytest.raises(ValueError, match='Invalid claims ledger'):
        bd.claims_summary(path)


def test_claims_page_and_claim_boxes_render_in_sphinx(bd, tmp_path):
    "The generated Claims page and a post page with every kind of box pass Sphinx -W (refs, attrs, raw link)."
    src = tmp_path / 'src'
    (src / 't').mkdir(parents=True)
    posts = _ledger_posts(bd)
    for p in posts:
        p['doc'] = p['doc'].replace('.ipynb', '.md')  # Markdown stand-ins for the executed notebooks
    fm = dict(title='Post P', source='https://kexue.fm/archives/1', original_title='原题')
    boxes = [bd.claim_markdown(r) for r in posts[0]['claims']]
    prov = bd.provenance_line(posts[0]['claims'], posts[0]['not_run'])
    (src / 't' / 'p.md').write_text(bd.title_block(fm, prov) + '\n## S x\n\n## T\n\n## U\n\n' + '\n\n'.join(boxes))
    (src / 't' / 'q.md').write_text('# Post Q\n')
    (src / 'claims.md').write_text(bd.claims_page(posts))
    (src / 'index.md').write_text('# Home\n\n```{toctree}\n:hidden:\n\nclaims\nt/p\nt/q\n```\n')
    assert bd.run_sphinx(src, tmp_path / 'html', jobs=1) == 0
    html = (tmp_path / 'html' / 'claims.html').read_text(encoding='utf-8')
    assert 'href="claims.json"' in html and 'verdict-untested' in html and 'checks-table' in html
    assert html.count('href="t/p.html#claim-p-') == 4
    page = (tmp_path / 'html' / 't' / 'p.html').read_text(encoding='utf-8')
    assert 'claim-kind-check' in page and 'claim-untested' in page and 'class="provenance"' in page
    assert 'Checked on CPU, torch 2.13.0, Python 3.11.7, 2026-12-07 (3 claims, 1 check;' in page


def test_sphinx_build_fails_on_a_broken_internal_link(bd, tmp_path):
    "The site build runs with -W: a link to a missing page or anchor stops it."
    src = tmp_path / 'src'
    src.mkdir()
    (src / 'index.md').write_text(
        '# Home\n\n## Part\n\nSee [part](#part) and [other](other.md#there).\n\n```{toctree}\n:hidden:\n\nother\n```\n'
    )
    (src / 'other.md').write_text('# Other\n\n## There\n\ntext\n')
    assert bd.run_sphinx(src, tmp_path / 'ok', jobs=1) == 0
    (src / 'other.md').write_text('# Other\n\n## Elsewhere\n\ntext\n')
    assert bd.run_sphinx(src, tmp_path / 'broken', jobs=1) != 0


def test_execute_notebook_skips_flags_and_reports_failures(bd, tmp_path):
    "A tiny notebook through the docs build's executor: skips, notes, kernel, env, coalesced progress bars."
    src = tmp_path / 'topic' / '10_demo.ipynb'
    src.parent.mkdir()
    nbformat.write(
        nbformat.v4.new_notebook(
            cells=[
                _code(
                    'import os, sys\nprint(sys.executable)\nprint(os.getcwd())\n'
                    'print(os.environ.get("MPLBACKEND"), os.environ.get("SU_NOTES_PROGRESS"))'
                ),
                _code('#| cuda\nraise RuntimeError("needs a GPU")'),
                _code('#| slow\nprint("slow ran")'),
                _code('#| eval: false\nraise RuntimeError("not evaluated")'),
                _code(
                    'import sys\nfor i in range(3): sys.stderr.write(f"\\rstep {i}"); sys.stderr.flush()\n'
                    'sys.stderr.write("\\n");'
                ),
                _code('#| hide\nimport nbdev; nbdev.nbdev_export()'),
            ]
        ),
        src,
    )
    r = bd.execute_notebook(src, tmp_path / 'out.ipynb', skip_slow=False, has_cuda=False, timeout=120)
    assert r['error'] is None, r['error']
    cells = nbformat.read(tmp_path / 'out.ipynb', as_version=4).cells
    assert cells[0].outputs[0].text.split('\n')[:3] == [
        sys.executable,
        str(src.parent),
        'module://matplotlib_inline.backend_inline None',
    ]
    assert 'needs a GPU' in cells[1].outputs[0].data['text/html'] and cells[1].execution_count is None
    assert cells[2].outputs[0].text == 'slow ran\n'
    assert cells[3].outputs == [] and cells[5].outputs == []
    assert [o.text for o in cells[4].outputs] == ['step 2\n']  # the final state of the \r updates

    nbformat.write(
        nbformat.v4.new_notebook(
            cells=[
                _code('#| slow\nprint("slow ran")'),
                _code('x = 1'),
                _code('1 / 0'),
                _code('print("never")'),
            ]
        ),
        src,
    )
    r = bd.execute_notebook(src, tmp_path / 'out2.ipynb', skip_slow=True, has_cuda=False, timeout=120)
    assert r['error'] and 'cell 2' in r['error'] and 'ZeroDivisionError' in r['error'] and '\x1b[' not in r['error']
    failed = nbformat.read(r['failed_copy'], as_version=4).cells
    assert 'skipped' in failed[0].outputs[0].data['text/plain'] and failed[3].outputs == []


# --------------------------------------------------------------------------------------------------------
# The rendered site in a real browser
# --------------------------------------------------------------------------------------------------------


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
    await Promise.all(Array.from(document.images).map(i => i.complete ? 0 : new Promise(r => { i.onload = i.onerror = r; })));
    const main = document.querySelector('article.bd-article') || document.body;
    const raw = [];
    const walker = document.createTreeWalker(main, NodeFilter.SHOW_TEXT);
    for (let n = walker.nextNode(); n; n = walker.nextNode()) {
        if (n.parentElement.closest('pre, code, script, style, mjx-container')) continue;
        if (n.textContent.includes('$$') || /\\\\[a-zA-Z]+/.test(n.textContent) && /[$]|\\\\[(\\[]/.test(n.textContent))
            raw.push(n.textContent.trim().slice(0, 120));
    }
    const toc = document.querySelector('#pst-page-toc-nav, nav.page-toc');
    const tocRect = toc ? toc.getBoundingClientRect() : null;
    const scrolls = el => { const s = getComputedStyle(el).overflowX; return s === 'auto' || s === 'scroll'; };
    const clipped = Array.from(main.querySelectorAll('mjx-container[display="true"], pre'))
        .filter(el => el.scrollWidth > el.clientWidth + 1 && !scrolls(el)
                      && !(el.parentElement && scrolls(el.parentElement) && el.parentElement.clientWidth < el.scrollWidth))
        .map(el => el.tagName + ': ' + el.textContent.slice(0, 60));
    return {
        title: document.title,
        h1: (main.querySelector('h1') || {textContent: ''}).textContent.replace(/#$/, '').trim(),
        sidebar: Array.from(document.querySelectorAll('nav.bd-docs-nav a.reference')).map(a => [a.getAttribute('href'), a.textContent.trim()]),
        links: Array.from(main.querySelectorAll('a[href]')).map(a => a.href),
        ids: Array.from(document.querySelectorAll('[id]')).map(e => e.id),
        headings: Array.from(main.querySelectorAll('section > h2, section > h3, section > h4'))
            .map(h => h.closest('section').id),
        toc_links: toc ? Array.from(toc.querySelectorAll('a[href^="#"]')).map(a => a.getAttribute('href').slice(1)) : [],
        toc_visible: !!(tocRect && tocRect.width > 0 && tocRect.left < window.innerWidth && getComputedStyle(toc).visibility !== 'hidden'),
        api_entries: main.querySelectorAll('a.showdoc-source').length,
        math: main.querySelectorAll('mjx-container').length,
        math_errors: main.querySelectorAll('mjx-merror, merror, [data-mjx-error]').length,
        math_sources: main.querySelectorAll('.math, span.math').length,
        raw_tex: raw,
        clipped: clipped,
        figures: Array.from(main.querySelectorAll('div.cell_output img, figure img')).map(i => [i.getAttribute('src'), i.naturalWidth]),
        copy_buttons: document.querySelectorAll('button.copybtn').length,
        code_blocks: main.querySelectorAll('div.highlight pre').length,
        prev_next: Array.from(document.querySelectorAll('.prev-next-area a')).map(a => a.className),
        source_link: (main.querySelector('.post-meta a[href*="kexue.fm/archives/"]') || {}).href || null,
        original_title: (main.querySelector('.post-meta a[href*="kexue.fm/archives/"]') || {textContent: ''}).textContent,
        claims: Array.from(main.querySelectorAll('div.claim')).map(d => d.id),
        provenance: (main.querySelector('.post-meta .provenance') || {textContent: ''}).textContent.trim(),
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
    hits = page.evaluate(
        "() => Array.from(document.querySelectorAll('#search-results ul.search li > a'))"
        ".map(a => new URL(a.href).pathname.replace(/^\\//, ''))"
    )
    page.screenshot(path=str(ARTIFACTS / f'search-{term}.png'))
    page.close()
    return hits


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
        search = {u: _search(desk, site_url, t) for u, t in SEARCH_TERMS.items()}
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
        _load_build_docs().page_url(p.relative_to(ROOT / 'nbs'))
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
    assert ledger == json.loads((ROOT / '_build' / 'claims.json').read_text(encoding='utf-8'))
    assert {f"{r['page']}#{r['anchor']}" for r in ledger['records']} == boxes
    assert len(ledger['records']) == len(boxes)
    bd = _load_build_docs()
    for r in ledger['records']:
        assert set(r) == set(bd.LEDGER_FIELDS) and r['kind'] in bd.CLAIM_KINDS and r['verdict'] in bd.VERDICTS, r
        assert re.fullmatch(r'\d+', r['post']) and (ROOT / r['notebook']).is_file(), r
        assert r['torch'] and r['python'] and r['date'] and r['device'], r  # provenance of every record
        assert r['kind'] == 'post' or r['tolerance'], r  # a check states its tolerance
    catalog = (DOCS / 'index.html').read_text(encoding='utf-8')
    for e in ledger['posts']:  # the catalog counts post claims only, with how many do not hold / are untested
        c = e['counts']
        cell = bd.catalog_cell(c, 'x')[1:].split('](')[0]
        assert cell in catalog, (e['title'], cell)
        assert (f"(+{c['not_run']['post']} in cells not run)" in cell) == bool(c['not_run']['post']), e['title']


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


def test_ledger_anchor_is_the_html_id(bd):
    "claims.json gives the id the HTML page has: Sphinx turns a label's `_` into `-`."
    assert bd.html_anchor('claim-dynamics-kernel_machine-2') == 'claim-dynamics-kernel-machine-2'
    assert bd.html_anchor('claim-p-1') == 'claim-p-1'
