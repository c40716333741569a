"""Packaging: what the package imports is what `pip install .` declares (the clean-venv install itself runs in
`make test-install`), and nothing the package never imports is declared. Optional extras (`text_requirements`,
`pip install su_notes[text]`) may only be imported inside functions, so every module imports without them."""

import ast
import configparser
import shlex
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# import name -> distribution name, where they differ
DIST = {'sklearn': 'scikit-learn', 'IPython': 'ipython'}
# imported only inside a running IPython shell (never imported by the package itself)
SHELL_ONLY = {'IPython'}
# declared because a declared package needs it without declaring it: sentencepiece's `sentencepiece_model_pb2`
# (used by `su_notes.text.tokenize.to_sentencepiece`) imports google.protobuf, and sentencepiece has no requirements
IMPLIED = {'protobuf': 'sentencepiece'}


def declared(key='requirements'):
    cfg = configparser.ConfigParser(delimiters=['='])
    cfg.read(ROOT / 'settings.ini', encoding='utf-8')
    reqs = shlex.split(cfg['DEFAULT'].get(key, ''))
    return {r.split(';')[0].split('[')[0].split('<')[0].split('>')[0].split('=')[0].strip().lower() for r in reqs}


def imported(module_level_only=False):
    """Top-level third-party modules imported anywhere in su_notes/ (module level or inside functions), or only
    those imported at module level (run by `import su_notes.x`)."""
    found = {}
    for f in (ROOT / 'su_notes').rglob('*.py'):
        tree = ast.parse(f.read_text(encoding='utf-8'))
        for node in tree.body if module_level_only else ast.walk(tree):
            if isinstance(node, ast.Import):
                mods = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                mods = [node.module]
            else:
                continue
            for m in mods:
                top = m.split('.')[0]
                if top != 'su_notes' and top not in sys.stdlib_module_names:
                    found.setdefault(top, f.name)
    return found


def test_every_import_is_declared():
    reqs = declared() | declared('text_requirements')
    missing = {m: f for m, f in imported().items() if m not in SHELL_ONLY and DIST.get(m, m).lower() not in reqs}
    assert not missing, f"imported by su_notes but not in settings.ini's requirements: {missing}"


def test_optional_extras_are_imported_lazily():
    "A `text` extra imported at module level would make `import su_notes.text...` fail without the extra."
    extras = declared('text_requirements')
    eager = {m: f for m, f in imported(module_level_only=True).items() if DIST.get(m, m).lower() in extras}
    assert not eager, f"optional extras imported at module level (import them inside the function): {eager}"


def test_every_declared_requirement_is_imported():
    used = {DIST.get(m, m).lower() for m in imported()}
    used |= {dep for dep, by in IMPLIED.items() if by in used}
    unused = (declared() | declared('text_requirements')) - used
    assert not unused, f"declared in settings.ini's requirements but never imported by su_notes: {unused}"


def test_the_static_check_would_catch_an_undeclared_import(tmp_path, monkeypatch):
    "The check above is not vacuous: a module importing an undeclared package is reported."
    fake = tmp_path / 'su_notes'
    fake.mkdir()
    (fake / 'm.py').write_text('def f():\n    import scipy.linalg\n')
    monkeypatch.setattr(sys.modules[__name__], 'ROOT', tmp_path)
    (tmp_path / 'settings.ini').write_text('[DEFAULT]\nrequirements = torch numpy\n')
    with pytest.raises(AssertionError, match='scipy'):
        test_every_import_is_declared()


def test_no_docstring_is_cut_in_two():
    "A bare string right after a docstring is a docstring that lost its second half (`__doc__` misses it)."
    cut = []
    for f in sorted((ROOT / "su_notes").rglob("*.py")):
        for n in ast.walk(ast.parse(f.read_text(encoding="utf-8"))):
            body = getattr(n, "body", None)
            if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and len(body) > 1:
                strs = [
                    isinstance(s, ast.Expr) and isinstance(s.value, ast.Constant) and isinstance(s.value.value, str)
                    for s in body[:2]
                ]
                if all(strs):
                    cut.append(f"{f.relative_to(ROOT)}:{n.lineno} {n.name}")
    assert not cut, cut
