"""Sphinx configuration of the su_notes site (`make docs`; `tools/build_docs.py` runs sphinx-build with `-c docs`).

The source tree is generated: `tools/build_docs.py` executes the notebooks, runs nbdev's processing and writes
MyST-ready copies (plus the generated Claims page) to `_build/site_src/`, which this configuration renders.
Everything the pages load is served from the site itself, MathJax 3 included: no request leaves its host."""

import shutil
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(
    0, str(HERE.parent / 'tools')
)  # build_docs.pandoc_id: the heading slugs nbdev's doc links use

from nbdev.config import get_config

_cfg = get_config(path=HERE.parent)

project = _cfg.get('title', 'su_notes')
author = _cfg.get('author', '')
copyright = _cfg.get('copyright', '')
release = version = _cfg.get('version', '')

extensions = ['myst_nb', 'sphinx_copybutton', 'sphinx.ext.mathjax']
exclude_patterns = ['_build', '**.ipynb_checkpoints']
templates_path = ['_templates']
html_static_path = ['_static']
html_css_files = ['su_notes.css']

# --- MyST-NB: notebooks arrive executed and nbdev-processed; never execute them again here ---
nb_execution_mode = 'off'
nb_render_markdown_format = 'myst'  # show_doc and record_claim Markdown outputs use $math$
nb_output_stderr = 'show'  # progress bars (tqdm writes to stderr)
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
myst_heading_slug_func = 'build_docs.pandoc_id'  # pandoc's ids, as quarto gives them: `core.html#gaussianmixture.log_prob`
myst_title_to_header = True
# show_doc headings are h3/h4 wherever the cell stands; that is intended, not a broken outline
suppress_warnings = ['myst.header']

# --- math: MathJax 3 served from _static/mathjax (trimmed copy of the sphinx-mathjax-offline package) ---
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
    "Copy the parts of MathJax 3 that tex-chtml loads (the component, CHTML fonts, TeX extensions, menu)."
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
    "The theme drops the sidebar where the current top-level section has no subtree (the index); ours is the site tree."
    context['suppress_sidebar_toctree'] = lambda **kwargs: False


def setup(app):
    app.connect('build-finished', _copy_mathjax)
    app.connect(
        'html-page-context', _sidebar_everywhere, priority=900
    )  # after the theme's own handler
