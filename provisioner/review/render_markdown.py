"""The access review as an attestation checklist for an issue or a pull request.

One task-list item per production grant and per admin, e.g.::

    - [ ] `alice@acme.com` — `notetaker-production` — `INC-4711 on-call`

Reviewers tick what stays; what is left unticked becomes the next config
change.

Decisions worth knowing:

* Every value is an inline code span (``escape.markdown_code``), so a reason
  or an email cannot end the item, open another list, a heading, a comment, a
  link or a mention: an item is one line whatever the value holds.
* Out-of-band grants and admins are marked in bold words, never by a value.
* API keys are named with their prefix, so a rotated key's old and new
  entries differ; the sign-off block ends the checklist (reviewer, date, a
  decision per section).
"""

from __future__ import annotations

from provisioner.escape import markdown_code as code
from provisioner.review import text
from provisioner.review.model import Admin, Change, Grant, Integration, Key, Origin, Review

# The checklist is for attesting grants; the period's changes are context, so a
# long history is cut here (the other formats hold all of it).
CHANGES_LIMIT = 50


def _grant_item(g: Grant) -> str:
    parts = [code(g.user), code(g.workspace), code(g.reason) if g.reason else "no reason given"]
    if g.expires is not None:
        parts.append(f"expires {code(text.expiry(g.expires))}")
    parts.append(f"since {code(text.since(g.provenance, g.since))}")
    if g.since is not None and g.since.commit:
        parts.append(f"commit {code(text.commit(g.since))}")
    if g.since is not None and text.approval(g.since):
        parts.append(code(text.approval(g.since)))
    if g.origin is not Origin.DECLARED:
        parts.append(f"**{text.ORIGIN_TEXT[g.origin]}**")
    return "- [ ] " + " — ".join(parts)


def _admin_item(a: Admin) -> str:
    parts = [code(a.email), f"admin, {code(a.status)}"]
    parts.append("declared" if a.declared else "**out of band: not an admin in the config**")
    parts.append(f"since {code(text.since(a.provenance, a.since))}")
    if a.since is not None and a.since.commit:
        parts.append(f"commit {code(text.commit(a.since))}")
    if a.since is not None and text.approval(a.since):
        parts.append(code(text.approval(a.since)))
    return "- [ ] " + " — ".join(parts)


def _key_item(k: Key) -> str:
    parts = [
        code(k.owner) + (" (service account)" if k.service_account else ""),
        f"{code(k.name)} {code(k.prefix)}" if k.prefix else code(k.name),
        code(k.workspace),
    ]
    if k.created_at is not None:
        parts.append(f"created {code(text.moment(k.created_at))}")
    if k.production:
        parts.append("production")
    parts.append(f"last used {code(text.moment(k.last_used_at))}" if k.last_used_at else "never used")
    if not k.declared:
        parts.append("**made by hand: not in the config**")
    return "- [ ] " + " — ".join(parts)


def _integration_item(i: Integration) -> str:
    parts = [f"{text.INTEGRATION_KINDS[i.kind]} {code(i.name)}", code(i.workspace)]
    if i.production:
        parts.append("production")
    status = text.integration_status(i, code)
    parts.append(f"**{status}**" if i.attention else status)
    if not i.declared:
        parts.append("**made by hand: not in the config**")
    return "- [ ] " + " — ".join(parts)


def _change_item(c: Change) -> str:
    """One change of the period: when, what, whom and where, and who approved its run."""
    parts = [f"- {code(text.moment(c.run.time))} {text.change_text(c)}"]
    parts += [code(value) for value in (c.user, c.workspace, text.change_detail(c)) if value]
    line = " ".join(parts)
    if c.run.commit:
        line += f" — commit {code(text.commit(c.run))}"
    approval = text.approval(c.run)
    if approval:
        line += f" — {code(approval)}"
    return line


def _sign_off() -> list[str]:
    """A block the reviewer fills in: who, when, and a decision per section."""
    rows = [f"| {section} | {text.DECISIONS} | | |" for section in text.SIGN_OFF_SECTIONS]
    return [
        "### Sign-off",
        "",
        "Reviewer: ____________________ Date: ____________ Signature: ____________________",
        "",
        "| Section | Decision | Reviewer | Date |",
        "| --- | --- | --- | --- |",
        *rows,
        "",
    ]


def render_markdown(review: Review) -> str:
    """The checklist for ``review``: summary, production grants, admins, expiring, changes."""
    s = review.summary
    lines = [
        f"## Access review: {code(s.organization)}",
        "",
        f"Read {code(text.moment(s.read_at))} from {code(s.endpoint or s.region)}; "
        f"config digest {code(s.config_digest[:16])}"
        + (f", commit {code(s.config_commit[:12])}" if s.config_commit else "")
        + ".",
        f"{s.users} users, {s.workspaces} workspace instances, {s.grants} grants "
        f"({s.production_grants} on production, {s.out_of_band} out of band).",
        *([f"**{text.history(s, code)}**", ""] if text.gap(s) else [""]),
        "Tick each grant that is still needed. What stays unticked becomes the next config change.",
        "",
        f"### Production access ({len(review.production_grants)})",
        "",
        *([_grant_item(g) for g in review.production_grants] or ["No production access."]),
        "",
        f"### Admins ({len(review.admins)})",
        "",
        *([_admin_item(a) for a in review.admins] or ["No admins."]),
        "",
        f"### API keys by owner and last use ({len(review.api_keys)})",
        "",
        *([_key_item(k) for k in review.api_keys] or ["No API keys."]),
        "",
        f"### Integrations on Recall.ai's v2 API ({len(review.integrations)})",
        "",
        *([_integration_item(i) for i in review.integrations] or [text.NO_INTEGRATIONS]),
        "",
        f"### Expiring within {review.expiry_window_days} days ({len(review.expiring)})",
        "",
        *(
            [
                f"- {code(g.user)} — {code(g.workspace)} — expires {code(text.expiry(g.expires))}"
                for g in review.expiring
            ]
            or ["None."]
        ),
        "",
        f"### Past expiry, still on the server ({len(review.past_expiry)})",
        "",
        *(
            [
                f"- {code(g.user)} — {code(g.workspace)} — expired {code(text.expiry(g.expires))}"
                for g in review.past_expiry
            ]
            or ["None."]
        ),
        "",
        f"### Changes since {code(text.moment(s.period_start))} ({len(review.changes)})",
        "",
        text.history(s, code),
        "",
        *(
            [_change_item(c) for c in review.changes[:CHANGES_LIMIT]]
            or ["None recorded." if s.audit_log else "No audit log given."]
        ),
        *(
            [f"- … and {len(review.changes) - CHANGES_LIMIT} more: see the HTML, CSV or JSON review."]
            if len(review.changes) > CHANGES_LIMIT
            else []
        ),
        "",
        *_sign_off(),
    ]
    return "\n".join(lines)
