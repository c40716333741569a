// The Claims page's filters: show only the records of one verdict and/or kind, without leaving the page.
// Each record is a <div class="record" data-verdict="..." data-kind="...">; other pages have no #claim-filter.
document.addEventListener('DOMContentLoaded', () => {
  const box = document.getElementById('claim-filter');
  if (!box) return;
  const records = Array.from(document.querySelectorAll('div.record[data-verdict]'));
  const chosen = {verdict: '', kind: ''};
  const apply = () => records.forEach(r => {
    r.hidden = Object.entries(chosen).some(([key, value]) => value && r.dataset[key] !== value);
  });
  for (const [key, name] of [['verdict', 'Verdict'], ['kind', 'Kind']]) {
    const label = document.createElement('label');
    const select = document.createElement('select');
    select.add(new Option('all', ''));
    for (const value of new Set(records.map(r => r.dataset[key]))) select.add(new Option(value, value));
    select.addEventListener('change', () => { chosen[key] = select.value; apply(); });
    label.append(`${name} `, select);
    box.append(label, ' ');
  }
});
