"""The access review as one self-contained HTML page.

Decisions worth knowing:

* One file, nothing fetched: the style and the filter script are inline, and
  there are no fonts, images or links to other origins. It works offline and
  prints to PDF through the browser's print dialog (``@media print``).
* The plain tables are the content. The filter box is ``hidden`` in the markup
  and shown by the script, so with JavaScript off nothing is missing and no
  dead control shows.
* The matrix stays usable at 2,000 users × 50 instances: the header rows and
  the user column are sticky, columns are grouped by environment with
  production first, and a cell holds one mark (the legend explains it).
  Cells carry no per-cell attributes, which keeps such a page near 3 MB.
  The long tables sit in ``content-visibility: auto`` blocks: the browser lays
  them out when they scroll into view, so such a page loads in about 2 s
  rather than 6 (the DOM, find-in-page and printing hold everything).
* Every value from the config, the API or the audit log passes through
  ``escape.html`` here, at the boundary, and nowhere else. The style and the
  script are constants that hold no value.
* Accessible as axe-core checks it: a ``<header>``, a labelled ``<nav>`` and
  one ``<main>`` hold everything; each matrix cell holds its words for screen
  readers (``<i>``, visually hidden) and the style draws its mark, with an
  empty alternative; a scrolling region can be reached by keyboard.
* Fits a narrow window: tables scroll inside their own box rather than the
  page, dates never wrap, and long URLs break anywhere.
* Prints compact and landscape (``@page``): a small organization takes a few
  pages. The sign-off block (reviewer, date, a decision per section) is
  there to be filled in on paper or in the PDF.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import replace

from provisioner.escape import html as esc
from provisioner.review import text
from provisioner.review.model import Change, Grant, Integration, Origin, Provenance, Review, Run

# A pull request is linked only when it is a web address, nothing else (no javascript:, no data:).
WEB_URL = re.compile(r"https?://[^\s\"'<>]+\Z", re.IGNORECASE)

# One character per matrix cell; the legend says what each means.
MARK: dict[Origin, str] = {
    Origin.DECLARED: "✓",
    Origin.OUT_OF_BAND: "!",
    Origin.EXPIRED: "✗",
    Origin.IGNORED: "~",
}
ORIGIN_WORD: dict[Origin, str] = {
    Origin.DECLARED: "declared",
    Origin.OUT_OF_BAND: "out of band",
    Origin.EXPIRED: "past expiry",
    Origin.IGNORED: "ignored",
}
MARK_CLASS: dict[Origin, str] = {
    Origin.DECLARED: "g",
    Origin.OUT_OF_BAND: "o",
    Origin.EXPIRED: "x",
    Origin.IGNORED: "i",
}

# A matrix cell holds its words, visually hidden, for a screen reader and for copying; the
# style draws the mark (``::before``, with an empty alternative so it is not read twice).
# Kept this short on purpose: 2,000 users × 50 instances make some 33,000 such cells.
CELL: dict[Origin, str] = {o: f'<td class="{MARK_CLASS[o]}"><i>{ORIGIN_WORD[o]}</i></td>' for o in Origin}
MARK_STYLE = "".join(f'td.{MARK_CLASS[o]}::before{{content:"{MARK[o]}"/""}}' for o in Origin)

ROW_CLASS: dict[Origin, str] = {Origin.OUT_OF_BAND: ' class="oob"', Origin.EXPIRED: ' class="exp"'}

STYLE = """
:root{color-scheme:light;--line:#d0d7de;--head:#f6f8fa;--warn:#fff1e5;--bad:#ffebe9}
*{box-sizing:border-box}
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0 auto;padding:1.5rem;
max-width:1400px;color:#1f2328}
h1{font-size:1.6rem;margin:0 0 .25rem}h2{font-size:1.25rem;margin:2rem 0 .5rem;
border-bottom:1px solid var(--line);padding-bottom:.25rem}h3{font-size:1rem;margin:1.25rem 0 .25rem}
.muted{color:#59636e}code{font:12px ui-monospace,SFMono-Regular,Menlo,monospace}
nav a{margin-right:1rem;display:inline-block}
dl.summary{display:grid;grid-template-columns:max-content 1fr;gap:.2rem 1rem;margin:0}
dl.summary dt{font-weight:600}dl.summary dd{margin:0;overflow-wrap:anywhere}
.filter{position:sticky;top:0;z-index:3;background:#fff;padding:.5rem 0}
.filter input{font:inherit;padding:.35rem .6rem;width:24rem;max-width:100%;
border:1px solid var(--line);border-radius:6px}
table{border-collapse:separate;border-spacing:0;font-size:13px}
th,td{border-bottom:1px solid var(--line);padding:.25rem .6rem;text-align:left;vertical-align:top}
td{overflow-wrap:anywhere}td.long{min-width:8rem}
thead th{background:var(--head);position:sticky;top:0;z-index:1}
tr.oob td,tr.oob th{background:var(--bad)}tr.exp td,tr.exp th{background:var(--warn)}
.flag{font-weight:600;color:#a40e26}
.when,.nowrap{white-space:nowrap}
.wide{overflow-x:auto;max-width:100%}
.scroll{overflow:auto;max-height:80vh;border:1px solid var(--line)}
table.matrix th,table.matrix td{padding:.1rem .3rem;border-right:1px solid var(--line)}
table.matrix td{text-align:center;min-width:1.6rem}
table.matrix td i{position:absolute;width:1px;height:1px;overflow:hidden;clip:rect(0 0 0 0);
white-space:nowrap}
table.matrix thead tr.env th{height:1.8rem;top:0;text-align:center}
table.matrix thead tr.ws th{top:1.8rem;writing-mode:vertical-rl;transform:rotate(180deg);
white-space:nowrap;max-height:14rem;font-weight:500}
table.matrix thead th.corner{left:0;z-index:2}
table.matrix tbody th{position:sticky;left:0;background:#fff;font-weight:500;white-space:nowrap;z-index:1}
table.matrix th.prod{background:#ddf4ff}
td.g{color:#1a7f37}td.o{background:var(--bad);color:#a40e26;font-weight:700}
td.x{background:var(--warn)}td.i{color:#59636e}
.legend span{margin-right:1rem}
tr.run th{background:var(--head);font-weight:500;overflow-wrap:anywhere}
table.signoff{width:100%}table.signoff td{height:2.2rem;min-width:8rem}
.sign{display:flex;flex-wrap:wrap;gap:.5rem 2rem;margin:.5rem 0 1rem}
.sign span{display:inline-block;min-width:14rem;border-bottom:1px solid #1f2328}
.cv{content-visibility:auto;contain-intrinsic-size:auto 40rem}
@page{size:A4 landscape;margin:7mm}
@media print{
 .filter,nav{display:none}
 .cv{content-visibility:visible}
 body{padding:0;max-width:none;font-size:7.5pt;line-height:1.2}
 h1{font-size:12pt}h2{font-size:10pt;margin:.5rem 0 .15rem;padding-bottom:.05rem}
 h3{font-size:8.5pt;margin:.3rem 0 .05rem}
 p{margin:.15rem 0}
 code{font-size:6.5pt}
 table{font-size:7pt;line-height:1.15}
 th,td{padding:0 .3rem}
 dl.summary{grid-template-columns:max-content 1fr max-content 1fr;gap:0 .8rem}
 .scroll,.wide{overflow:visible;max-height:none;border:0}
 thead{display:table-header-group}
 thead th,table.matrix tbody th,table.matrix thead tr.ws th{position:static}
 table.matrix thead tr.env th{height:auto}
 table.matrix thead tr.ws th{max-height:8rem}
 .sign{margin:.2rem 0 .4rem}
 table.signoff td{height:1.3rem}
 tr{break-inside:avoid}
 h2,h3{break-after:avoid}
 section{break-before:auto}
 a{color:inherit;text-decoration:none}
}
"""

# Shows the filter box and narrows every filterable table's rows to those
# whose text holds the query (the matrix: whose user does). A link ending in
# ``#filter=TEXT`` opens the page filtered (the box shows it, with the count).
SCRIPT = """
(function(){
var box=document.getElementById('filter'),bar=document.querySelector('div.filter');
if(!box||!bar){return;}
bar.hidden=false;
var m=/^#filter=(.*)$/.exec(location.hash);
if(m){try{box.value=decodeURIComponent(m[1]);}catch(e){box.value='';}}
var tables=document.querySelectorAll('table.f');
var count=document.getElementById('filter-count');
function run(){
 var q=box.value.trim().toLowerCase(),shown=0,total=0;
 for(var t=0;t<tables.length;t++){
  var matrix=tables[t].classList.contains('matrix'),rows=tables[t].tBodies[0].rows;
  for(var i=0;i<rows.length;i++){
   var r=rows[i],hay=(matrix?r.cells[0].textContent:r.textContent).toLowerCase();
   var hit=q===''||hay.indexOf(q)>=0;if(r.hidden===hit){r.hidden=!hit;}total++;if(hit){shown++;}
  }
 }
 count.textContent=q===''?'':shown+' of '+total+' rows match';
}
box.addEventListener('input',run);if(box.value){run();}
})();
"""


# Every section, by its id, in page order.
SECTIONS: tuple[tuple[str, str], ...] = (
    ("summary", "Summary"),
    ("admins", "Admins"),
    ("production", "Production access"),
    ("matrix", "Access matrix"),
    ("expiring", "Expiring"),
    ("api-keys", "API keys"),
    ("integrations", "Integrations"),
    ("changes", "Changes in the period"),
    ("sign-off", "Sign-off"),
)
NAV = (
    '<nav aria-label="Sections">'
    + "".join(f'<a href="#{anchor}">{esc(title)}</a>' for anchor, title in SECTIONS)
    + "</nav>"
)


def render_html(review: Review) -> str:
    """The whole page for ``review``."""
    s = review.summary
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        '<meta name="referrer" content="no-referrer">',
        f"<title>Access review: {esc(s.organization)}</title>",
        f"<style>{STYLE}{MARK_STYLE}</style></head><body>",
        "<header>",
        f"<h1>Access review: {esc(s.organization)}</h1>",
        f'<p class="muted">Read {esc(text.moment(s.read_at))} from {esc(s.endpoint or s.region)}. '
        f"Changes since {esc(text.moment(s.period_start))}.</p>",
        f'<p class="flag">{esc(text.history(s))}</p>' if text.gap(s) else "",
        NAV,
        "</header>",
        "<main>",
        '<div class="filter" hidden><label>Filter <input id="filter" type="search" '
        'placeholder="user or workspace" autocomplete="off"></label> '
        '<span id="filter-count" class="muted"></span></div>',
        _summary(review),
        _admins(review),
        _production(review),
        _matrix(review),
        _expiring(review),
        _keys(review),
        _integrations(review),
        _changes(review),
        _sign_off(),
        "</main>",
        f"<script>{SCRIPT}</script>",
        "</body></html>",
    ]
    return "\n".join(parts) + "\n"


def _summary(review: Review) -> str:
    s = review.summary
    rows = [
        ("Organization", s.organization),
        ("Region", s.region),
        ("Endpoint", s.endpoint),
        ("Read at", text.moment(s.read_at)),
        ("Config", ", ".join(s.config_sources)),
        ("Config digest", s.config_digest),
        ("Config commit", s.config_commit or "not in a git checkout"),
        ("Audit log", s.audit_log or "none given"),
        ("Period", f"since {text.moment(s.period_start)}"),
        ("History", text.history(s)),
        ("Changes known", text.covered(s)),
        ("Users", str(s.users)),
        ("Workspace instances", str(s.workspaces)),
        ("Grants", str(s.grants)),
        ("Production grants", str(s.production_grants)),
        ("Out of band", str(s.out_of_band)),
    ]
    items = "".join(f"<dt>{esc(k)}</dt><dd>{esc(v)}</dd>" for k, v in rows)
    return f'<section id="summary"><h2>Summary</h2><dl class="summary">{items}</dl></section>'


def _table(headers: Iterable[str], rows: Iterable[str], empty: str) -> str:
    """A filterable table in a box that scrolls sideways on its own, never the page."""
    body = "".join(rows)
    if not body:
        return f'<p class="muted">{esc(empty)}</p>'
    head = "".join(f'<th scope="col">{esc(h)}</th>' for h in headers)
    table = f'<table class="f"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'
    return f'<div class="wide">{table}</div>'


def _since_cell(provenance: Provenance, run: Run | None) -> str:
    """Since when: a date stays on one line; the words for an unknown start may wrap."""
    when = ' class="when"' if provenance is Provenance.GRANTED and run is not None else ""
    return f"<td{when}>{esc(text.since(provenance, run))}</td>"


OOB_ROW = ' class="oob"'
SERVICE_FLAG = ' <span class="flag">service account</span>'
PRODUCTION_FLAG = ' <span class="flag">production</span>'
BY_HAND = '<span class="flag">no: made by hand</span>'


def _keys(review: Review) -> str:
    """Live API keys by owner: who holds what, and whether it is still in use."""
    rows = (
        f'<tr{"" if k.declared else OOB_ROW}><th scope="row">{esc(k.owner)}'
        f"{SERVICE_FLAG if k.service_account else ''}</th>"
        f"<td>{esc(k.name)} <code>{esc(k.prefix)}</code></td>"
        f"<td>{esc(k.workspace)}{PRODUCTION_FLAG if k.production else ''}</td>"
        f'<td class="when">{esc(text.moment(k.created_at) if k.created_at else "")}</td>'
        f'<td class="when">{esc(text.moment(k.last_used_at) if k.last_used_at else "never")}</td>'
        f"<td>{'yes' if k.declared else BY_HAND}</td></tr>"
        for k in review.api_keys
    )
    table = _table(("Owner", "Key", "Workspace", "Created", "Last used", "In config"), rows, "No API keys.")
    title = f"API keys by owner and last use ({len(review.api_keys)})"
    return f'<section id="api-keys"><h2>{title}</h2>{table}</section>'


def _integrations(review: Review) -> str:
    """Zoom apps and Google logins on the v2 API: a webhook Zoom never validated stands out."""
    rows = (
        f'<tr{OOB_ROW if i.attention else ""}><th scope="row">{esc(text.INTEGRATION_KINDS[i.kind])}</th>'
        f"<td>{esc(i.name)}</td>"
        f"<td>{esc(i.workspace)}{PRODUCTION_FLAG if i.production else ''}</td>"
        f"<td>{_integration_status(i)}</td>"
        f"<td>{'yes' if i.declared else BY_HAND}</td></tr>"
        for i in review.integrations
    )
    table = _table(("Integration", "Name", "Workspace", "Status", "In config"), rows, text.NO_INTEGRATIONS)
    title = f"Integrations on Recall.ai's v2 API ({len(review.integrations)})"
    return f'<section id="integrations"><h2>{esc(title)}</h2>{table}</section>'


def _integration_status(i: Integration) -> str:
    status = text.integration_status(i, esc) if i.checked_at else esc(text.integration_status(i))
    return f'<span class="flag">{status}</span>' if i.attention else status


def _admins(review: Review) -> str:
    oob = ' class="oob"'
    undeclared = '<span class="flag">no: out of band</span>'
    rows = (
        f'<tr{"" if a.declared else oob}><th scope="row">{esc(a.email)}</th>'
        f"<td>{esc(a.status)}</td>"
        f"<td>{'yes' if a.declared else undeclared}</td>"
        f"{_since_cell(a.provenance, a.since)}"
        f"<td><code>{esc(text.commit(a.since))}</code></td></tr>"
        for a in review.admins
    )
    table = _table(("Admin", "Status", "In config", "Admin since", "Commit"), rows, "No admins.")
    return f'<section id="admins"><h2>Admins ({len(review.admins)})</h2>{table}</section>'


def _grant_row(g: Grant, *, workspace: bool) -> str:
    cls = ROW_CLASS.get(g.origin, "")
    origin = text.ORIGIN_TEXT[g.origin]
    origin_cell = esc(origin) if g.origin is Origin.DECLARED else f'<span class="flag">{esc(origin)}</span>'
    first = f"<td>{esc(g.workspace)}</td>" if workspace else ""
    return (
        f'<tr{cls}><th scope="row">{esc(g.user)}</th>{first}<td>{esc(g.role)}</td>'
        f"{_since_cell(g.provenance, g.since)}<td><code>{esc(text.commit(g.since))}</code></td>"
        f"<td>{esc(g.reason or '')}</td><td>{esc(text.expiry(g.expires))}</td><td>{origin_cell}</td></tr>"
    )


GRANT_HEADERS = ("User", "Role", "Since", "Commit", "Reason", "Expires", "Config")


def _production(review: Review) -> str:
    production = [i for i in review.instances if i.production]
    by_instance: dict[str, list[Grant]] = {i.name: [] for i in production}
    for g in review.production_grants:
        by_instance.setdefault(g.workspace, []).append(g)
    blocks = [
        f'<h3>{esc(name)} ({len(grants)})</h3><div class="cv">'
        + _table(GRANT_HEADERS, (_grant_row(g, workspace=False) for g in grants), "No members.")
        + "</div>"
        for name, grants in by_instance.items()
    ]
    body = "".join(blocks) or '<p class="muted">No production workspace instances.</p>'
    count = len(review.production_grants)
    return f'<section id="production"><h2>Production access ({count})</h2>{body}</section>'


def _matrix(review: Review) -> str:
    instances = review.instances
    groups: list[tuple[str, bool, int]] = []
    for instance in instances:
        label = instance.environment or "no environment"
        if groups and groups[-1][0] == label:
            groups[-1] = (label, instance.production, groups[-1][2] + 1)
        else:
            groups.append((label, instance.production, 1))
    env_row = "".join(
        f'<th scope="colgroup" colspan="{n}"{_prod(p)}>{esc(label)}</th>' for label, p, n in groups
    )
    ws_row = "".join(f'<th scope="col"{_prod(i.production)}>{esc(i.name)}</th>' for i in instances)
    column = {i.name: n for n, i in enumerate(instances)}
    cells: dict[str, list[str]] = {user: ["<td></td>"] * len(instances) for user in review.users}
    for g in review.grants:
        row = cells.setdefault(g.user, ["<td></td>"] * len(instances))
        row[column[g.workspace]] = CELL[g.origin]
    body = "".join(f'<tr><th scope="row">{esc(user)}</th>{"".join(row)}</tr>' for user, row in cells.items())
    legend = "".join(
        f'<span><span class="{MARK_CLASS[o]}" aria-hidden="true">{MARK[o]}</span> '
        f"{esc(text.ORIGIN_TEXT[o])}</span>"
        for o in Origin
    )
    return (
        f'<section id="matrix"><h2>Access matrix ({len(review.users)} users × '
        f"{len(instances)} instances)</h2>"
        f'<p class="legend muted">{legend}</p><div class="scroll cv" tabindex="0" role="region" '
        'aria-label="Access matrix, scrollable"><table class="f matrix">'
        f'<thead><tr class="env"><th class="corner" rowspan="2" scope="col">User</th>{env_row}</tr>'
        f'<tr class="ws">{ws_row}</tr></thead><tbody>{body}</tbody></table></div></section>'
    )


def _prod(production: bool) -> str:
    return ' class="prod"' if production else ""


def _expiring(review: Review) -> str:
    soon = _table(
        ("User", "Workspace", *GRANT_HEADERS[1:]),
        (_grant_row(g, workspace=True) for g in review.expiring),
        f"No grant expires within {review.expiry_window_days} days.",
    )
    past = _table(
        ("User", "Workspace", *GRANT_HEADERS[1:]),
        (_grant_row(g, workspace=True) for g in review.past_expiry),
        "No grant past its expiry is on the server.",
    )
    return (
        f'<section id="expiring"><h2>Expiring</h2><h3>Within {review.expiry_window_days} days '
        f"({len(review.expiring)})</h3>{soon}"
        f"<h3>Past expiry, still on the server ({len(review.past_expiry)})</h3>"
        f"{past}</section>"
    )


def _run_row(run: Run) -> str:
    """The heading row of one apply's changes: when, from which commit, approved by whom."""
    parts = [f'<span class="when">{esc(text.moment(run.time))}</span>']
    if run.commit:
        parts.append(f"commit <code>{esc(text.commit(run))}</code>")
    parts.append(f"audit log line {run.line}")
    parts.append(_approval(run) or '<span class="muted">no approval recorded</span>')
    return f'<tr class="run"><th scope="colgroup" colspan="4">Apply at {" · ".join(parts)}</th></tr>'


def _approval(run: Run) -> str:
    """Who approved the run; the pull request is a link when it is an http(s) URL (else plain text)."""
    rest = text.approval(replace(run, pull_request=None))
    if not run.pull_request:
        return esc(rest)
    pull = esc(run.pull_request)
    link = (
        f'<a href="{pull}" rel="noreferrer noopener">{pull}</a>' if WEB_URL.match(run.pull_request) else pull
    )
    return f"PR {link}" + (f"; {esc(rest)}" if rest else "")


def _change_row(c: Change) -> str:
    return (
        f'<tr><td class="nowrap">{esc(text.change_text(c))}</td>'
        f'<td class="nowrap">{esc(c.user or "")}</td><td class="nowrap">{esc(c.workspace or "")}</td>'
        f'<td class="long">{esc(text.change_detail(c))}</td></tr>'
    )


def _change_rows(changes: Iterable[Change]) -> Iterator[str]:
    """Each apply's heading row, then its changes (changes come grouped by run, oldest first)."""
    last: Run | None = None
    for c in changes:
        if c.run != last:
            last = c.run
            yield _run_row(c.run)
        yield _change_row(c)


def _changes(review: Review) -> str:
    table = _table(
        ("Change", "User", "Instance", "Detail"),
        _change_rows(review.changes),
        "No change recorded in the period." if review.summary.audit_log else "No audit log given.",
    )
    note = f'<p class="muted">{esc(text.history(review.summary))}</p>'
    count = len(review.changes)
    return f'<section id="changes"><h2>Changes in the period ({count})</h2>{note}{table}</section>'


def _sign_off() -> str:
    """The block a reviewer fills in: who, when, and a decision per section."""
    rows = "".join(
        f'<tr><th scope="row">{esc(section)}</th><td>{esc(text.DECISIONS)}</td><td></td><td></td></tr>'
        for section in text.SIGN_OFF_SECTIONS
    )
    return (
        '<section id="sign-off"><h2>Sign-off</h2>'
        '<p class="sign">Reviewer: <span></span> Date: <span></span> Signature: <span></span></p>'
        '<table class="signoff"><thead><tr><th scope="col">Section</th><th scope="col">Decision</th>'
        f'<th scope="col">Reviewer</th><th scope="col">Date</th></tr></thead><tbody>{rows}</tbody></table>'
        "</section>"
    )
