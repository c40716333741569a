"""Sphinx configuration of the su_notes site (`make docs`: `tools/build_docs.py` runs sphinx-build).

The source tree is generated: `tools/build_docs.py` writes nbdev-processed notebooks (and the Claims
page) to `_build/site_src/`, executes them with jupyter-cache and merges the outputs back; MyST-NB
renders them as they are. Everything the pages load is served from the site itself (MathJax too)."""

import shutil
import sys
from pathlib import Path

from nbdev.config import get_config

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / '_ext'))  # su_site: search, arXiv links, post links, llms.txt
sys.path.insert(0, str(HERE.parent / 'tools'))  # build_docs.pandoc_id

_cfg = get_config(path=HERE.parent)

project = _cfg.get('title', 'su_notes')
author = _cfg.get('author', '')
copyright = _cfg.get('copyright', '')
release = version = _cfg.get('version', '')

extensions = ['myst_nb', 'sphinx_copybutton', 'sphinx.ext.mathjax', 'su_site']
exclude_patterns = ['_build', '**.ipynb_checkpoints']
templates_path = ['_templates']
html_static_path = ['_static']
html_css_files = ['su_notes.css']
html_js_files = ['claims.js']  # the Claims page's filters (does nothing elsewhere)
su_site_url = f"{_cfg.get('doc_host', '')}{_cfg.get('doc_baseurl', '')}"  # nbdev's doc links

# --- MyST-NB: build_docs.py executed the notebooks (jupyter-cache); render their outputs ---
nb_execution_mode = 'off'
nb_render_markdown_format = 'myst'  # show_doc and record_claim Markdown outputs use $math$
nb_output_stderr = 'remove'  # no stderr boxes on pages (the build runs with SU_NOTES_PROGRESS=0)
nb_merge_streams = True
myst_enable_extensions = [
    'dollarmath',
    'amsmath',
    'colon_fence',
    'attrs_block',
    'attrs_inline',
    'smartquotes',
]
myst_dmath_double_inline = True
myst_heading_anchors = 6
# pandoc's ids, as quarto gives them: `core.html#gaussianmixture.log_prob`
myst_heading_slug_func = 'build_docs.pandoc_id'
myst_title_to_header = True
# show_doc headings are h3/h4 wherever the cell stands; that is intended, not a broken outline
suppress_warnings = ['myst.header']

# --- math: MathJax 3 served from _static/mathjax (a trimmed copy of sphinx-mathjax-offline's) ---
mathjax_path = 'mathjax/tex-chtml.js'
mathjax3_config = {'tex': {'tags': 'ams'}}

# --- theme ---
html_theme = 'pydata_sphinx_theme'
html_title = project
html_favicon = '_static/favicon.svg'
html_last_updated_fmt = None
html_show_sourcelink = False
html_copy_source = False
html_theme_options = {
    'navbar_center': [],  # the sidebar is the navigation; the header holds search + theme
    'navbar_end': ['theme-switcher', 'navbar-icon-links'],
    'icon_links': [],
    'secondary_sidebar_items': ['page-toc'],
    'show_toc_level': 4,  # every show_doc entry (h3 functions, h4 methods) is listed
    'show_nav_level': 2,
    'navigation_depth': 3,
    'collapse_navigation': False,
    'footer_start': ['copyright'],
    'footer_end': ['sphinx-version'],
    'show_prev_next': True,
    'pygments_light_style': 'default',
    'pygments_dark_style': 'monokai',
}
html_sidebars = {'**': ['sidebar-nav-bs']}
html_context = {'default_mode': 'auto'}

copybutton_exclude = '.linenos, .gp, .go'

# The site must stay self-contained and warning-free: sphinx-build runs with -W --keep-going.
MATHJAX_KEEP = [
    'tex-chtml.js',
    'output/chtml/fonts/woff-v2',
    'input/tex/extensions',
    'ui/menu.js',
    'a11y/assistive-mml.js',
    'a11y/semantic-enrich.js',
    'a11y/complexity.js',
    'a11y/explorer.js',
]


def _copy_mathjax(app, exc):
    "Copy the parts of MathJax 3 that tex-chtml loads: component, CHTML fonts, TeX extensions."
    if exc is not None or app.builder.format != 'html':
        return
    import importlib.util

    spec = importlib.util.find_spec('sphinx-mathjax-offline')
    src = Path(spec.origin).parent / 'static' / 'mathjax'
    dst = Path(app.outdir) / '_static' / 'mathjax'
    for rel in MATHJAX_KEEP:
        s, d = src / rel, dst / rel
        if not s.exists():
            continue
        d.parent.mkdir(parents=True, exist_ok=True)
        if s.is_dir():
            shutil.copytree(s, d, dirs_exist_ok=True)
        else:
            shutil.copy2(s, d)


def _sidebar_everywhere(app, pagename, templatename, context, doctree):
    "The theme drops the sidebar where the top-level section has no subtree (the index); keep it."
    context['suppress_sidebar_toctree'] = lambda **kwargs: False


def setup(app):
    app.connect('build-finished', _copy_mathjax)
    app.connect('html-page-context', _sidebar_everywhere, priority=900)  # after the theme's
    app.add_config_value('su_site_url', '', 'env')  # nbdev's absolute doc links start with it
