"""Sphinx side of the su_notes build: pandoc's heading ids, links between pages, claim boxes.

A MyST-NB mime renderer (registered in `setup`) renders each `record_claim` output as a claim box
with the label the Claims page links to, and resolves nbdev's doc links in Markdown outputs."""

import dataclasses
import json
import posixpath
import re

CLAIM_MIME = 'application/vnd.su-notes.claim+json'  # = su_notes.core.CLAIM_MIME
MARKS = {'holds': '✓', 'caveat': '≈', 'does not hold': '✗', 'untested': '?'}
_re_link = re.compile(r'(?<!!)\[((?:[^\[\]\n]|\[[^\]\n]*\])*)\]\(([^()\s]+)\)')


def pandoc_id(text: str) -> str:
    "Pandoc's heading ids (as quarto gives them; nbdev's doc links use them): `core.html#f.g`."
    s = re.sub(r'\s+', '-', ''.join(c for c in text.strip().lower() if c.isalnum() or c in '_-. '))
    return s[next((i for i, c in enumerate(s) if c.isalpha()), len(s)) :] or 'section'


def relink(md: str, here: str, docs: dict, site: str) -> str:
    """Links in `md` (on the page with source `here`) to a notebook of nbs/ or a page of the site
    (`docs`: nbs path or page URL -> source name) become relative source links."""

    def sub(m):
        path, hsh, frag = m[2].partition('#')
        if site and path.startswith(site + '/'):
            key = path[len(site) + 1 :]
        elif re.match(r'[a-zA-Z][\w+.-]*:|[#/]', m[2]):
            return m[0]
        else:
            key = posixpath.normpath(posixpath.join(posixpath.dirname(here), path))
        if key not in docs:
            return m[0]
        return (
            f'[{m[1]}]({posixpath.relpath(docs[key], posixpath.dirname(here) or ".")}{hsh}{frag})'
        )

    parts = md.split('```')  # links inside code fences stay as they are
    parts[::2] = [_re_link.sub(sub, p) for p in parts[::2]]
    return '```'.join(parts)


def claim_box(rec: dict, label: str) -> str:
    "One record's box: 'Claim' (kind post) or 'Check', the verdict, what was measured."
    v, kind, seeds = rec['verdict'], rec.get('kind') or 'post', list(rec.get('seeds') or [])
    extra = [f'*Tolerance:* {rec["tolerance"]}'] if rec.get('tolerance') else []
    if seeds:
        extra.append(f'*Seeds:* {", ".join(map(str, seeds)) if len(seeds) < 5 else len(seeds)}')
    return (
        f'({label})=\n:::{{container}} claim claim-{v.replace(" ", "-")} claim-kind-{kind}\n'
        f'**{MARKS[v]} {"Claim" if kind == "post" else "Check"} — {v}.** {rec["claim"]}\n\n'
        f'*Measured:* {rec["measured"]}' + ('  \n' + ' · '.join(extra) if extra else '') + '\n:::'
    )


class ClaimRenderer:
    "MyST-NB mime plugin: claim records as boxes; nbdev's links in Markdown outputs as page links."

    mime_priority_overrides = [('*', CLAIM_MIME, 0)]

    @staticmethod
    def handle_mime(renderer, data, inline):
        env, doc = renderer.renderer.sphinx_env, renderer.renderer.document
        if data.mime_type == CLAIM_MIME:
            doc['su_claims'] = n = doc.get('su_claims', 0) + 1
            rec = data.content if isinstance(data.content, dict) else json.loads(data.content)
            md = claim_box(rec, f'claim-{env.docname.replace("/", "-")}-{n}')
        elif data.mime_type == 'text/markdown' and env is not None:
            from nbdev.doclinks import NbdevLookup

            docs = {f'{d}.html': env.doc2path(d, False).as_posix() for d in env.found_docs}
            md = re.sub(
                r'\)\{target="_blank" style="float:right[^}]*\}', '){.showdoc-source}', data.string
            )
            md = re.sub(r'^\s*---\s*\n', '', NbdevLookup().linkify(md))  # show_doc's leading rule
            md = relink(
                md, env.doc2path(env.docname, False).as_posix(), docs, env.config.su_site_url
            )
        else:
            return None
        data = dataclasses.replace(data, mime_type='text/markdown', content=md)
        return renderer._render_markdown_base(data, fmt='myst', inline=inline)


def setup(app):
    from myst_nb.core import render

    # MyST-NB finds mime plugins by entry point only; this one belongs to the site, not a package
    render.load_mime_renders = lambda: [ClaimRenderer]
    app.add_config_value('su_site_url', '', 'env')
    return {'parallel_read_safe': True, 'parallel_write_safe': True}
