"""tools/build_docs.py without a site build: the notebook transform, the Claims page, the ledger."""

import importlib.util
import json
import os
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope='module')
def bd():
    spec = importlib.util.spec_from_file_location('build_docs', ROOT / 'tools' / 'build_docs.py')
    mod = importlib.util.module_from_spec(spec)
    sys.modules.setdefault('build_docs', mod)
    spec.loader.exec_module(mod)
    cwd = os.getcwd()
    os.chdir(ROOT)  # nbdev's get_config() looks for settings.ini from the cwd
    yield mod
    os.chdir(cwd)


def test_page_urls_keep_quarto_urls(bd):
    assert bd.page_url('optim/10_adax.ipynb') == 'optim/adax.html'
    assert bd.page_url('benchmarks.md') == 'benchmarks.html'
    assert bd.source_name('optim/10_adax.ipynb') == 'optim/adax.ipynb'
    assert bd.source_name('00_core.ipynb') == 'core.ipynb'


def test_transform_tags_cells_and_adds_show_doc(bd, tmp_path):
    C = nbformat.v4.new_code_cell
    nb = nbformat.v4.new_notebook(
        cells=[
            nbformat.v4.new_markdown_cell('# T\n\n> d\n\n- source: https://kexue.fm/archives/1'),
            C('#| default_exp t'),
            C('#| hide\nfrom nbdev.showdoc import show_doc'),
            C('#| exports\ndef f(x):\n    "Doc"\n    return x'),
            C('#| slow\nrecord_claim("a", "1", kind="check", tolerance=1)'),
            C('#| cuda\nx = 1'),
            C('#| echo: false\n#| fig-cap: A plot\n#| fig-alt: Axes\nplot()'),
            C('#| hide\nimport nbdev; nbdev.nbdev_export()'),
        ]
    )
    p = tmp_path / '10_t.ipynb'
    nbformat.write(nb, p)
    out = bd.transform(p, '10_t.ipynb', {}, '', skip_slow=True, has_cuda=False)
    code = [c for c in out.cells if c.cell_type == 'code']
    tags = {c.source.split('\n')[0]: c.metadata['tags'] for c in code}
    assert out.metadata['su_fm']['source'] == 'https://kexue.fm/archives/1'
    assert tags['from nbdev.showdoc import show_doc'] == ['remove-cell']
    sd = next(c for c in code if c.source == 'show_doc(f)')
    assert tags['def f(x):'] == [] and sd.metadata['su_sd']  # code shown, its doc entry added
    assert 'skip-execution' in tags['record_claim("a", "1", kind="check", tolerance=1)']
    assert tags['x = 1'] == ['skip-execution']
    assert tags['plot()'] == ['remove-input'] and not any(c.source.startswith('#|') for c in code)
    fig = next(c for c in code if c.source == 'plot()').metadata['mystnb']
    assert fig == {'figure': {'caption': 'A plot'}, 'image': {'alt': 'Axes'}}
    assert set(tags['import nbdev; nbdev.nbdev_export()']) == {'remove-cell', 'skip-execution'}
    notes = [c.source for c in out.cells if c.cell_type == 'markdown' and 'cell-note' in c.source]
    assert len(notes) == 2 and 'cell-note-slow' in notes[0] and 'cell-note-cuda' in notes[1]
    _, recs, not_run = bd.merge_outputs(out, 't.ipynb', {}, '')
    assert recs == [] and not_run == {'post': 0, 'check': 1}


def test_merge_outputs_makes_show_doc_markdown_and_claim_boxes(bd):
    sd = nbformat.v4.new_code_cell('show_doc(f)', metadata={'su_sd': True, 'tags': []})
    sd.outputs = [nbformat.v4.new_output('display_data', {'text/markdown': '---\n\n### f\n\n> f(x)'})]
    rec = dict(claim='c', measured='m', verdict='does not hold', kind='post', seeds=[1, 2])
    cl = nbformat.v4.new_code_cell('record_claim(...)', metadata={'su_skipped': '', 'tags': []})
    data = {'text/markdown': 'box', bd.CLAIM_MIME: rec}
    cl.outputs = [nbformat.v4.new_output('display_data', data)]
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell('## Sec'), sd, cl])
    nb, recs, not_run = bd.merge_outputs(nb, 't/p.ipynb', {}, '')
    assert nb.cells[1].cell_type == 'markdown' and nb.cells[1].source.startswith('### f')
    out = nb.cells[2].outputs[0]['data']
    assert bd.CLAIM_MIME not in out and '(claim-t-p-1)=' in out['text/markdown']
    assert '✗ Claim — does not hold.** c' in out['text/markdown'] and '*Seeds:* 1, 2' in out['text/markdown']
    assert recs[0]['label'] == 'claim-t-p-1' and recs[0]['section'] == 'f' and not_run['post'] == 0


def _rec(claim, verdict, kind='post', n=1):
    prov = dict(device='cpu', torch='2.13.0', python='3.11.7', date='2026-12-07')
    return dict(
        claim=claim,
        measured='1.0',
        verdict=verdict,
        kind=kind,
        tolerance='1e-6' * (kind == 'check'),
        seeds=[],
        values={'x': 1.0},
        provenance=prov,
        page='t/p.ipynb',
        section='S',
        label=f'claim-t-p-{n}',
    )


def _posts():
    recs = [_rec('a', 'holds'), _rec('b', 'does not hold', n=2), _rec('c', 'untested', n=3)]
    recs.append(_rec('d', 'holds', 'check', 4))
    post = dict(
        rel='t/10_p.ipynb',
        doc='t/p.ipynb',
        title='P',
        source='https://kexue.fm/archives/7',
        id='post-t-p',
        original_title='原题',
        claims=recs,
        not_run={'post': 1, 'check': 0},
    )
    return [post]


def test_claims_page_order_ids_and_data_attributes(bd):
    page = bd.claims_page(_posts())
    order = ['## Summary by post', '## Claims that do not hold', '## Caveats and untested']
    order += ['## All records by post', '(post-t-p)=']
    assert [page.index(h) for h in order] == sorted(page.index(h) for h in order)
    assert '3 claims across 1 post: 1 holds, 1 does not hold, 1 untested; 1 check.' in page
    assert page.count('data-verdict="does not hold" data-kind="post"') == 2  # failures, then by post
    assert page.count('data-kind="check"') == 1 and '{ref}`§ <claim-t-p-2>`' in page
    assert bd.says(1, 'does not hold') == '1 does not hold' and bd.says(2, 'holds') == '2 hold'


def test_ledger_fields_and_counts(bd):
    led = bd.ledger(_posts(), 'nbs')
    assert (led['format'], led['version']) == ('su_notes claims ledger', 1)
    assert led['counts']['post'] == 3 and led['counts']['check'] == 1
    assert led['counts']['not_run'] == {'post': 1, 'check': 0}
    r = led['records'][1]
    assert (r['post'], r['notebook'], r['page'], r['anchor']) == (
        '7',
        'nbs/t/10_p.ipynb',
        't/p.html',
        'claim-t-p-2',
    )
    fields = 'post source title notebook page anchor section kind claim measured values tolerance'
    assert set(r) == set((fields + ' verdict seeds device torch python date').split())
    assert r['tolerance'] is None and led['records'][3]['tolerance'] == '1e-6'
    json.dumps(led)


def test_catalog_column_counts_post_claims(bd):
    md = '| # | Post | Status |\n|---|---|---|\n| 1 | [p](t/p.ipynb) | done |\n| 2 | x | planned |'
    out = bd.catalog(md, {'t/p.ipynb': _posts()[0]})
    assert out.split('\n')[1:4] == [
        '| # | Post | Status | Claims |',
        '|---|---|---|---|',
        '| 1 | [p](t/p.ipynb) | done | {ref}`3 claims: 1 does not hold, 1 untested (+1 in cells not run) <post-t-p>` |',
    ]
    assert out.endswith('| 2 | x | planned | — |\n:::')


def test_fit_signature_moves_long_comments_above_and_wraps(bd):
    import re

    params = ', '.join(f'{x}:int={i}' for i, x in enumerate('abcdefghij'))
    sig = f"```python\ndef f(\n    {params},\n"
    sig += "    reduction:str='mean', # " + 'word ' * 20 + "\n)->Tensor: # short\n```"
    out = re.sub(r'```python\n.*?```', bd.fit_signature, sig, flags=re.S)
    assert max(map(len, out.split('\n'))) <= 100 and ")->Tensor: # short" in out
    assert "    # word" in out and "\n    reduction:str='mean',\n" in out


def test_cell_options_stand_at_the_top_of_their_cell():
    "nbdev reads `#|` options only before a cell's code; one further down (a caption, say) is ignored."
    bad = []
    for p in sorted((ROOT / 'nbs').rglob('*.ipynb')):
        for c in nbformat.read(p, as_version=4).cells:
            lines = c.source.split('\n') if c.cell_type == 'code' else []
            top = next((i for i, s in enumerate(lines) if not s.startswith('#|')), len(lines))
            if any(s.startswith('#|') for s in lines[top:]):
                bad.append(f'{p.relative_to(ROOT)}: {lines[0][:60]}')
    assert not bad, bad
