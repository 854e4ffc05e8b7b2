"""What was reviewed is what gets applied (issue 17), and saved plans are portable (issue 11).

The real CLI against a sandbox over loopback: the plan digest reads the same in
every form of a plan; ``apply --expect``/``--expect-file`` applies the reviewed
plan and refuses anything else, applying nothing; a saved plan made with a
developer's key applies with an admin's; an edited saved plan is refused; the
"apply it with" hint repeats the endpoint.
"""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

from tests.support import Api, Cli, org_config

BODY = """
environments:
  development: {members: ["@eng"]}
  production: {members: [alice@acme.com]}
users:
  - {email: admin@example.com, role: admin}
  - {email: alice@acme.com, role: admin}
  - {email: bob@acme.com, role: developer}
groups:
  eng: [alice@acme.com, bob@acme.com]
workspaces:
  - name: notetaker
    environments: [development, production]
"""

WITH_DAVE = BODY.replace(
    "  - {email: bob@acme.com, role: developer}\n",
    "  - {email: bob@acme.com, role: developer}\n  - {email: dave@acme.com, role: admin}\n",
)

TEXT_DIGEST = re.compile(r"^Plan digest: (sha256:[0-9a-f]{64})$", re.MULTILINE)
MARKDOWN_DIGEST = re.compile(r"^Plan digest: `(sha256:[0-9a-f]{64})`$", re.MULTILINE)


def write(tmp_path: Path, sandbox, body: str = BODY, name: str = "org.yaml") -> str:  # noqa: ANN001
    path = tmp_path / name
    path.write_text(org_config(sandbox.base_url, body))
    return str(path)


def only(pattern: re.Pattern[str], text: str) -> str:
    (found,) = pattern.findall(text)
    return found


def snapshot(api: Api) -> tuple:
    users = {email: (u["role"], u["status"]) for email, u in api.users().items()}
    return users, set(api.workspaces()), api.memberships()


def ok(result) -> str:  # noqa: ANN001
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def test_the_digest_is_the_same_in_text_json_markdown_and_show(sandbox, cli: Cli, tmp_path: Path) -> None:
    config = write(tmp_path, sandbox)
    text = only(TEXT_DIGEST, ok(cli("plan", "-c", config)))
    as_json = ok(cli("plan", "-c", config, "--format", "json"))
    markdown = only(MARKDOWN_DIGEST, ok(cli("plan", "-c", config, "--format", "markdown")))
    planfile = str(tmp_path / "plan.json")
    ok(cli("plan", "-c", config, "--out", planfile))
    shown_text = only(TEXT_DIGEST, ok(cli("show", planfile)))
    shown_json = ok(cli("show", planfile, "--format", "json"))
    shown_markdown = only(MARKDOWN_DIGEST, ok(cli("show", planfile, "--format", "markdown")))

    digests = {
        text,
        json.loads(as_json)["digest"],
        markdown,
        shown_text,
        json.loads(shown_json)["digest"],
        shown_markdown,
    }
    assert len(digests) == 1
    assert shown_json == as_json  # show of a saved plan is the plan, byte for byte
    # And a plan with another change has another digest.
    other = write(tmp_path, sandbox, WITH_DAVE)
    assert only(TEXT_DIGEST, ok(cli("plan", "-c", other))) not in digests


def test_apply_expect_applies_the_reviewed_plan_and_records_it(
    sandbox, cli: Cli, api: Api, tmp_path: Path
) -> None:
    config = write(tmp_path, sandbox)
    # The plan comment as the example workflows post it, with a human's forged
    # digest quoted above it: the last digest line is the tool's.
    comment = tmp_path / "comment.md"
    plan_md = ok(cli("plan", "-c", config, "--format", "markdown"))
    forged = "Plan digest: `sha256:" + "0" * 64 + "`\n"
    comment.write_text("<!-- provisioner-plan -->\n" + forged + plan_md)
    digest = only(MARKDOWN_DIGEST, plan_md)

    log = tmp_path / "audit.jsonl"
    # No --auto-approve and no terminal: a matching expectation is the approval.
    applied = cli("apply", "-c", config, "--expect-file", str(comment), "--audit-log", str(log))
    ok(applied)
    assert api.memberships() == {
        ("notetaker-development", "alice@acme.com"),
        ("notetaker-development", "bob@acme.com"),
        ("notetaker-production", "alice@acme.com"),
    }
    record = json.loads(log.read_text().splitlines()[-1])
    assert record["applied_digest"] == record["expected_digest"] == digest
    assert record["expected_from"] == f"--expect-file {comment}"
    assert record["override_reason"] is None and record["overridden"] is False

    # Nothing left to do: the empty plan's digest, given on the command line, applies nothing.
    empty = only(TEXT_DIGEST, ok(cli("plan", "-c", config)))
    ok(cli("apply", "-c", config, "--expect", empty))


def test_apply_expect_refuses_after_an_out_of_band_change(
    sandbox, cli: Cli, api: Api, tmp_path: Path
) -> None:
    config = write(tmp_path, sandbox)
    reviewed = tmp_path / "reviewed.json"
    reviewed.write_text(ok(cli("plan", "-c", config, "--format", "json")))
    digest = json.loads(reviewed.read_text())["digest"]

    # Between review and merge someone invites mallory by hand: the fresh plan
    # now removes her, which nobody reviewed.
    assert api.request("POST", "/users/", {"email": "mallory@evil.example", "role": "developer"})[0] == 201
    before = snapshot(api)
    sandbox.reset_stats()

    by_digest = cli("apply", "-c", config, "--expect", digest, "--auto-approve")
    assert by_digest.returncode == 1
    assert "differs from the reviewed plan: nothing was applied" in by_digest.stderr
    assert "Only the reviewed digest is known" in by_digest.stderr
    assert "- user mallory@evil.example" in by_digest.stdout  # the fresh plan is shown

    by_plan = cli("apply", "-c", config, "--expect-file", str(reviewed), "--auto-approve")
    assert by_plan.returncode == 1
    named = by_plan.stderr.split("Changes nobody reviewed (in the fresh plan only):\n", 1)[1]
    assert named.startswith("  - user mallory@evil.example")

    assert snapshot(api) == before
    writes = [r for r in sandbox.stats()["by_route"] if r.split()[0] in ("POST", "PATCH", "DELETE")]
    assert writes == []


def test_apply_expect_refuses_a_config_change_the_review_did_not_contain(
    sandbox, cli: Cli, api: Api, tmp_path: Path
) -> None:
    config = write(tmp_path, sandbox)
    reviewed = tmp_path / "reviewed.json"
    reviewed.write_text(ok(cli("plan", "-c", config, "--format", "json")))
    before = snapshot(api)

    # The merged config differs from the reviewed one: dave joins as admin and
    # bob is promoted.
    merged = write(
        tmp_path,
        sandbox,
        WITH_DAVE.replace("{email: bob@acme.com, role: developer}", "{email: bob@acme.com, role: admin}"),
    )
    refused = cli("apply", "-c", merged, "--expect-file", str(reviewed), "--auto-approve")
    assert refused.returncode == 1
    assert snapshot(api) == before
    stderr = refused.stderr
    assert "Changes nobody reviewed (in the fresh plan only):\n  + user dave@acme.com (admin)" in stderr
    assert (
        "Changes that now do something else:\n"
        "  reviewed: + user bob@acme.com (developer)\n"
        "  now:      + user bob@acme.com (admin)"
    ) in stderr
    assert "--override-expect" in stderr


def test_the_emergency_override_applies_and_marks_the_audit_record(
    sandbox, cli: Cli, api: Api, tmp_path: Path
) -> None:
    config = write(tmp_path, sandbox)
    digest = only(TEXT_DIGEST, ok(cli("plan", "-c", config)))
    merged = write(tmp_path, sandbox, WITH_DAVE)
    log = tmp_path / "audit.jsonl"
    overridden = cli(
        "apply",
        "-c",
        merged,
        "--expect",
        digest,
        "--override-expect",
        "INC-4711 outage",
        "--auto-approve",
        "--audit-log",
        str(log),
    )
    ok(overridden)
    assert "--override-expect applies it anyway (reason: INC-4711 outage)" in overridden.stderr
    assert "dave@acme.com" in api.users()
    record = json.loads(log.read_text().splitlines()[-1])
    assert record["expected_digest"] == digest != record["applied_digest"]
    assert record["expected_from"] == "--expect"
    assert record["override_reason"] == "INC-4711 outage" and record["overridden"] is True

    # The override needs an expectation and a printable reason.
    assert cli("apply", "-c", merged, "--override-expect", "x", "--auto-approve").returncode != 0
    bad = cli("apply", "-c", merged, "--expect", digest, "--override-expect", "a\x1b[2Kb", "--auto-approve")
    assert bad.returncode != 0 and "printable" in bad.stderr


def test_a_malformed_expectation_is_a_clean_error(sandbox, cli: Cli, api: Api, tmp_path: Path) -> None:
    config = write(tmp_path, sandbox)
    result = cli("apply", "-c", config, "--expect", "sha256:nothex", "--auto-approve")
    assert result.returncode == 1
    assert "is not a plan digest" in result.stderr and "Traceback" not in result.stderr
    assert set(api.users()) == {"admin@example.com"}


def test_a_plan_saved_with_a_developer_key_applies_with_an_admin_key(
    sandbox, cli: Cli, api: Api, tmp_path: Path
) -> None:
    config = write(tmp_path, sandbox)
    ok(cli("apply", "-c", config, "--auto-approve"))
    developer = ok(
        cli("sandbox", "token", "create", "--db", str(sandbox.db_path), "--email", "bob@acme.com")
    ).strip()
    assert developer and developer != sandbox.token

    merged = write(tmp_path, sandbox, WITH_DAVE)
    planfile = str(tmp_path / "plan.json")
    saved = cli("plan", "-c", merged, "--out", planfile, token=developer)
    ok(saved)
    # A developer cannot apply it...
    assert cli("apply", "-c", merged, "--plan", planfile, token=developer).returncode == 1
    assert "dave@acme.com" not in api.users()
    # ...an admin can, with nothing to re-sign.
    applied = cli("apply", "-c", merged, "--plan", planfile)
    ok(applied)
    assert api.users()["dave@acme.com"]["role"] == "admin"


def test_an_edited_saved_plan_is_refused_even_with_a_recomputed_digest(
    sandbox, cli: Cli, api: Api, tmp_path: Path
) -> None:
    config = write(tmp_path, sandbox)
    planfile = tmp_path / "plan.json"
    ok(cli("plan", "-c", config, "--out", str(planfile)))
    original = json.loads(planfile.read_text())
    before = snapshot(api)

    # Bob is invited as admin instead of developer; the digest field is left alone.
    forged = json.loads(json.dumps(original))
    (bob,) = [c for c in forged["changes"] if c["key"] == "bob@acme.com"]
    bob["after"]["role"] = "admin"
    planfile.write_text(json.dumps(forged))
    edited = cli("apply", "-c", config, "--plan", str(planfile))
    assert edited.returncode == 1 and "was modified after it was made" in edited.stderr

    # The digest is no secret: recompute it as an attacker would (with `show`
    # refusing, take it from a plan of the forged config instead).
    forged_config = write(
        tmp_path,
        sandbox,
        BODY.replace("{email: bob@acme.com, role: developer}", "{email: bob@acme.com, role: admin}"),
        name="forged.yaml",
    )
    forged["digest"] = json.loads(ok(cli("plan", "-c", forged_config, "--format", "json")))["digest"]
    planfile.write_text(json.dumps(forged))
    assert only(TEXT_DIGEST, ok(cli("show", str(planfile)))) == forged["digest"]
    refused = cli("apply", "-c", config, "--plan", str(planfile))
    assert refused.returncode == 1
    assert "Changes that now do something else:" in refused.stderr
    assert "reviewed: + user bob@acme.com (admin)" in refused.stderr
    assert snapshot(api) == before


def test_the_apply_hint_repeats_the_endpoint_and_works_as_printed(cli: Cli, tmp_path: Path) -> None:
    folder = tmp_path / "a folder"
    folder.mkdir()
    db = folder / "org's db.sqlite"
    config = folder / "org.yaml"
    # --sandbox takes precedence over the config's api_url, which is never reached here.
    config.write_text(org_config("http://127.0.0.1:9/api/v1", BODY))
    planfile = folder / "plan.json"
    # plan needs an existing sandbox (a mistyped path is an error); apply creates one.
    refused = cli("plan", "-c", str(config), "--sandbox", str(db))
    assert refused.returncode == 1 and "no such sandbox database" in refused.stderr
    assert not db.exists()
    empty = folder / "empty.yaml"
    empty.write_text(
        org_config("http://127.0.0.1:9/api/v1", "users:\n  - {email: admin@example.com, role: admin}\n")
    )
    created = cli("apply", "-c", str(empty), "--sandbox", str(db), "--auto-approve")
    assert created.returncode == 0 and "Created a new sandbox organization" in created.stderr
    saved = cli("plan", "-c", str(config), "--sandbox", str(db), "--out", str(planfile))
    ok(saved)
    (command,) = re.findall(r"apply it with `([^`]+)`", saved.stderr)
    words = shlex.split(command)
    assert words[:2] == ["provisioner", "apply"]
    assert words[words.index("--sandbox") + 1] == str(db)
    assert words[words.index("--plan") + 1] == str(planfile)
    ok(cli(*words[1:]))  # copied as printed, it applies to the same sandbox
    assert "No changes" in ok(cli("plan", "-c", str(config), "--sandbox", str(db)))


def test_the_apply_hint_repeats_an_api_url(sandbox, cli: Cli, tmp_path: Path) -> None:
    config = write(tmp_path, sandbox)
    planfile = str(tmp_path / "plan.json")
    saved = cli("plan", "-c", config, "--api-url", sandbox.base_url, "--out", planfile)
    ok(saved)
    (command,) = re.findall(r"apply it with `([^`]+)`", saved.stderr)
    words = shlex.split(command)
    assert words[words.index("--api-url") + 1] == sandbox.base_url


def test_a_refusal_against_the_plan_comment_names_the_difference_line_by_line(
    sandbox, cli: Cli, api: Api, tmp_path: Path
) -> None:
    # The CI merge job passes the last plan comment (markdown), not the JSON plan.
    config = write(tmp_path, sandbox)
    reviewed = tmp_path / "reviewed.md"
    reviewed.write_text(ok(cli("plan", "-c", config, "--format", "markdown")))
    before = snapshot(api)
    merged = write(tmp_path, sandbox, WITH_DAVE)
    refused = cli("apply", "-c", merged, "--expect-file", str(reviewed), "--auto-approve")
    assert refused.returncode == 1
    assert snapshot(api) == before
    assert (
        "Changes nobody reviewed (in the fresh plan only):\n  + user dave@acme.com (admin)" in refused.stderr
    )
    assert "Reviewed changes the fresh plan no longer makes" not in refused.stderr
    assert "shortened" not in refused.stderr
