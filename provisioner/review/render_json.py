"""The access review as JSON, in the shape ``schemas/review.schema.json`` documents.

Values are as read (not escaped): a program reads this, and escapes them for
wherever it shows them. Times are ISO 8601 in UTC.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from provisioner import __version__
from provisioner.review import text
from provisioner.review.model import Admin, Change, Grant, Review, Run

REVIEW_FORMAT_VERSION = 1


def _time(value: datetime) -> str:
    return value.astimezone(UTC).isoformat()


def _run(run: Run | None) -> dict[str, Any] | None:
    if run is None:
        return None
    return {
        "time": _time(run.time),
        "commit": run.commit,
        "audit_log_line": run.line,
        "plan_digest": run.plan_digest,
        "result": run.result,
        "pull_request": run.pull_request,
        "approvers": list(run.approvers),
        "merged_by": run.merged_by,
    }


def _grant(g: Grant) -> dict[str, Any]:
    return {
        "workspace": g.workspace,
        "user": g.user,
        "environment": g.environment,
        "production": g.production,
        "role": g.role,
        "status": g.status,
        "origin": g.origin.value,
        "provenance": g.provenance.value,
        "since": _run(g.since),
        "reason": g.reason,
        "expires": _time(g.expires) if g.expires is not None else None,
    }


def _admin(a: Admin) -> dict[str, Any]:
    return {
        "email": a.email,
        "status": a.status,
        "declared": a.declared,
        "provenance": a.provenance.value,
        "since": _run(a.since),
    }


def _change(c: Change) -> dict[str, Any]:
    return {
        "run": _run(c.run),
        "action": c.action,
        "type": c.type,
        "label": text.change_text(c),
        "key": c.key,
        "workspace": c.workspace,
        "user": c.user,
        "target": c.target,
        "role_before": c.role_before,
        "role_after": c.role_after,
        "prefix_before": c.prefix_before,
        "prefix_after": c.prefix_after,
    }


def review_document(review: Review) -> dict[str, Any]:
    """The JSON document for ``review`` as Python data."""
    s = review.summary
    return {
        "format_version": REVIEW_FORMAT_VERSION,
        "tool_version": __version__,
        "kind": "access-review",
        "summary": {
            "organization": s.organization,
            "region": s.region,
            "endpoint": s.endpoint,
            "read_at": _time(s.read_at),
            "config_digest": s.config_digest,
            "config_commit": s.config_commit,
            "config_sources": list(s.config_sources),
            "audit_log": s.audit_log,
            "period_start": _time(s.period_start),
            "history": {
                "state": s.history.value,
                "starts_at": _time(s.history_start) if s.history_start is not None else None,
                "covered_from": _time(s.covered_from) if s.covered_from is not None else None,
                "note": text.history(s),
            },
            "counts": {
                "users": s.users,
                "workspaces": s.workspaces,
                "grants": s.grants,
                "production_grants": s.production_grants,
                "out_of_band": s.out_of_band,
            },
        },
        "admins": [_admin(a) for a in review.admins],
        "users": list(review.users),
        "instances": [
            {"name": i.name, "environment": i.environment, "production": i.production}
            for i in review.instances
        ],
        "grants": [_grant(g) for g in review.grants],
        "expiring": [_grant(g) for g in review.expiring],
        "past_expiry": [_grant(g) for g in review.past_expiry],
        "changes": [_change(c) for c in review.changes],
        "expiry_window_days": review.expiry_window_days,
        "api_keys": [
            {
                "owner": k.owner,
                "workspace": k.workspace,
                "name": k.name,
                "prefix": k.prefix,
                "production": k.production,
                "created_at": k.created_at.isoformat() if k.created_at else None,
                "last_used_at": k.last_used_at.isoformat() if k.last_used_at else None,
                "declared": k.declared,
                "service_account": k.service_account,
            }
            for k in review.api_keys
        ],
        "integrations": [
            {
                "kind": i.kind,
                "workspace": i.workspace,
                "production": i.production,
                "name": i.name,
                "status": i.status,
                "checked_at": i.checked_at,
                "declared": i.declared,
                "attention": i.attention,
            }
            for i in review.integrations
        ],
    }


def render_json(review: Review) -> str:
    """The JSON text for ``review``, indented, ending in a newline."""
    return json.dumps(review_document(review), indent=2, ensure_ascii=False) + "\n"
