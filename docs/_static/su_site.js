// Site search (Sphinx's searchtools.js reads these globals; this file loads before it):
// - the query is split as Sphinx splits it, with accents folded as su_site.py folds the index ("Fréchet" → "Frechet");
// - the pages that gather every post (index, Claims, Benchmarks) rank after the posts themselves;
// - result snippets lose the math delimiters \( \) \[ \] of the pages' unrendered TeX, and the post links.
var splitQuery = (query) => query.normalize('NFKD').replace(/[\u0300-\u036f]/g, '')
  .split(/[^\p{Letter}\p{Number}_\p{Emoji_Presentation}]+/gu).filter((term) => term);

var Scorer = {
  score: ([docname, , , , score]) => (['index', 'claims', 'benchmarks'].includes(docname) ? score - 20 : score),
  objNameMatch: 11, objPartialMatch: 6, objPrio: {0: 15, 1: 5, 2: -5}, objPrioDefault: 0,
  title: 15, partialTitle: 7, term: 5, partialTerm: 2,
};

document.addEventListener('DOMContentLoaded', () => {
  if (typeof Search === 'undefined' || !Search.htmlToText) return;
  const htmlToText = Search.htmlToText;
  Search.htmlToText = (html, anchor) =>
    htmlToText(html.replace(/<nav class="post-links"[\s\S]*?<\/nav>/, ''), anchor).replace(/\\[()[\]]/g, '');
});
