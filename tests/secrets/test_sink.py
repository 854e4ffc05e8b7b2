"""Secret sinks: where a server-generated secret goes (``--secrets-dir``, ``--secrets-command``).

Real files under ``tmp_path`` and real subprocesses (``sys.executable``), no
mocks. Promise 6 (no secret in any output): every failure path is checked with
a sentinel value that must not appear, whole or as any 12 characters of it, in
the message, the ``repr`` or the formatted traceback.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shlex
import stat
import sys
import traceback
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from provisioner.errors import ProvisionerError, SinkError
from provisioner.secrets.names import MAX_NAME
from provisioner.secrets.sink import (
    STDERR_EXCERPT,
    CommandSink,
    DirectorySink,
    GeneratedSecret,
    sink_from_options,
)

PYTHON = shlex.quote(sys.executable)
FRAGMENT = 12  # what ``redact`` promises: no run of this many characters of the secret survives


def sentinel() -> str:
    return "SENTINEL-" + secrets.token_hex(16)


def make_secret(
    value: str | None = None,
    *,
    organization: str = "Acme Inc.",
    workspace: str = "notetaker-production",
    environment: str | None = "production",
    object: str = "webhook https://hooks.example.invalid/recall",
    slug: str = "webhook-3f2a9c1b",
) -> GeneratedSecret:
    return GeneratedSecret(
        organization=organization,
        workspace=workspace,
        environment=environment,
        object=object,
        slug=slug,
        value=sentinel() if value is None else value,
    )


def assert_no_secret(value: str, *texts: str) -> None:
    """Neither ``value`` nor any ``FRAGMENT`` characters of it is in ``texts``."""
    for text in texts:
        assert value not in text
        for i in range(len(value) - FRAGMENT + 1):
            assert value[i : i + FRAGMENT] not in text, f"{value[i : i + FRAGMENT]!r} leaked into {text!r}"


def failure(secret: GeneratedSecret, error: pytest.ExceptionInfo[SinkError]) -> str:
    """The error's message, after checking that nothing a user could see carries the secret."""
    exc = error.value
    assert_no_secret(secret.value, str(exc), repr(exc), "".join(traceback.format_exception(exc)))
    return str(exc)


@pytest.fixture
def umask_zero() -> Iterator[None]:
    """Umask 0: a file created 0666 would be world-writable. The sink must not rely on the umask."""
    old = os.umask(0)
    try:
        yield
    finally:
        os.umask(old)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


# --- the secret and its name ----------------------------------------------------------------


def test_the_value_is_in_no_repr_or_str() -> None:
    secret = make_secret()
    assert secret.value not in repr(secret)
    assert secret.value not in str(secret)
    assert "notetaker-production" in repr(secret)  # the rest is still there to debug with


@pytest.mark.parametrize(
    ("workspace", "slug", "name"),
    [
        ("notetaker-production", "webhook-3f2a9c1b", "RECALL_NOTETAKER_PRODUCTION_WEBHOOK_3F2A9C1B"),
        ("notetaker-production", "verification-secret", "RECALL_NOTETAKER_PRODUCTION_VERIFICATION_SECRET"),
        ("Ünïcode ws -- x", "a", "RECALL_N_CODE_WS_X_A"),
        ("../../etc", "x", "RECALL_ETC_X"),
        ("ws\x1b[31m\n", "$(rm -rf)", "RECALL_WS_31M_RM_RF"),
        ("", "", "RECALL"),
    ],
)
def test_the_name_keeps_only_capitals_digits_and_single_underscores(
    workspace: str, slug: str, name: str
) -> None:
    assert make_secret(workspace=workspace, slug=slug).name == name


@given(workspace=st.text(), slug=st.text())
@settings(max_examples=300, deadline=None)
def test_every_name_is_a_valid_variable_name_within_the_cap(workspace: str, slug: str) -> None:
    name = make_secret(workspace=workspace, slug=slug).name
    assert re.fullmatch(r"RECALL(_[A-Z0-9]+)*", name), name
    assert len(name) <= MAX_NAME


def test_a_long_name_is_cut_and_stays_distinct() -> None:
    a = make_secret(workspace="w" * 10_000 + "a").name
    b = make_secret(workspace="w" * 10_000 + "b").name
    assert len(a) <= MAX_NAME and len(b) <= MAX_NAME
    assert a != b
    assert a.startswith("RECALL_WWW")


# --- options ---------------------------------------------------------------------------------


def test_both_options_are_refused(tmp_path: Path) -> None:
    with pytest.raises(SinkError, match="--secrets-dir and --secrets-command were both given; choose one"):
        sink_from_options(str(tmp_path), f"{PYTHON} -c pass")


def test_neither_option_means_no_sink() -> None:
    assert sink_from_options(None, None) is None


def test_each_option_makes_its_sink(tmp_path: Path) -> None:
    directory = sink_from_options(str(tmp_path / "s"), None)
    command = sink_from_options(None, f"{PYTHON} -c pass")
    assert isinstance(directory, DirectorySink)
    assert directory.describe() == f"directory {tmp_path / 's'}"
    assert isinstance(command, CommandSink)
    assert command.describe() == f"command {sys.executable}"


def test_sink_error_is_a_provisioner_error() -> None:
    assert issubclass(SinkError, ProvisionerError)  # the CLI reports it like every other


# --- the directory sink ----------------------------------------------------------------------


def test_the_file_is_0600_and_its_directories_0700_under_umask_zero(tmp_path: Path, umask_zero: None) -> None:
    root = tmp_path / "new" / "secrets"  # missing, with a missing parent
    secret = make_secret()
    where = DirectorySink(root).deliver(secret)
    path = root / "Acme%20Inc." / "notetaker-production" / "RECALL_NOTETAKER_PRODUCTION_WEBHOOK_3F2A9C1B"
    assert where == str(path)
    assert mode(path) == 0o600
    for directory in (
        tmp_path / "new",
        root,
        root / "Acme%20Inc.",
        root / "Acme%20Inc." / "notetaker-production",
    ):
        assert mode(directory) == 0o700, directory


def test_a_strict_umask_does_not_make_the_file_unusable(tmp_path: Path) -> None:
    old = os.umask(0o777)
    try:
        path = Path(DirectorySink(tmp_path).deliver(make_secret()))
    finally:
        os.umask(old)
    assert mode(path) == 0o600
    assert mode(path.parent) == 0o700


def test_the_file_holds_exactly_the_value_without_a_newline(tmp_path: Path) -> None:
    secret = make_secret("whsec_" + secrets.token_urlsafe(32))
    path = Path(DirectorySink(tmp_path).deliver(secret))
    assert path.read_bytes() == secret.value.encode()


def test_a_rotation_replaces_the_file_atomically(tmp_path: Path) -> None:
    sink = DirectorySink(tmp_path)
    first, second = (
        make_secret("first-" + secrets.token_hex(16)),
        make_secret("second-" + secrets.token_hex(16)),
    )
    path = Path(sink.deliver(first))
    with path.open("rb") as reader:  # opened before the rotation: still sees the whole old secret
        old_inode = os.fstat(reader.fileno()).st_ino
        assert sink.deliver(second) == str(path)
        assert reader.read() == first.value.encode()
    assert path.read_bytes() == second.value.encode()
    assert path.stat().st_ino != old_inode  # a new file renamed over the old, not rewritten in place
    assert mode(path) == 0o600
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]  # no temp file left


HOSTILE_NAMES = [
    "../../etc",
    "a/b",
    "/etc/passwd",
    ".",
    "..",
    "",
    "-rf",
    ".hidden",
    "nul\0byte",
    "esc\x1b[31mape\nnewline",
    "percent%2E%2E",
    "lone \ud800 surrogate",
    "x" * 10_000,
    "€" * 5_000,
]


@pytest.mark.parametrize("name", HOSTILE_NAMES, ids=range(len(HOSTILE_NAMES)))
def test_a_hostile_name_stays_inside_the_root(tmp_path: Path, name: str) -> None:
    root = tmp_path / "root"
    secret = make_secret(organization=name, workspace=name, slug=name)
    path = Path(DirectorySink(root).deliver(secret))
    assert_inside(root, path)
    assert path.read_bytes() == secret.value.encode()
    for part in path.relative_to(root).parts:
        assert re.fullmatch(r"[A-Za-z0-9_%~][A-Za-z0-9._%~-]*", part), part
        assert len(part) <= 100


def assert_inside(root: Path, path: Path) -> None:
    real = Path(os.path.realpath(path))
    assert real.parent.parent.parent == Path(os.path.realpath(root)), path
    assert real.is_file()


@given(organization=st.text(), workspace=st.text(), slug=st.text())
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_any_names_stay_inside_the_root_and_the_write_succeeds(
    tmp_path: Path, organization: str, workspace: str, slug: str
) -> None:
    root = tmp_path / "root"  # shared by the examples: other secrets' files are already there
    secret = make_secret(organization=organization, workspace=workspace, slug=slug)
    path = Path(DirectorySink(root).deliver(secret))
    assert_inside(root, path)
    assert path.read_bytes() == secret.value.encode()


@given(a=st.text(max_size=40), b=st.text(max_size=40))
@settings(max_examples=300, deadline=None)
def test_distinct_names_get_distinct_files(a: str, b: str) -> None:
    sink = DirectorySink("/nonexistent-root-for-paths")
    if a != b:
        assert sink.path_of(make_secret(workspace=a)) != sink.path_of(make_secret(workspace=b))
        # A file is named after the secret's destination name (which the config keeps unique).
        if make_secret(slug=a).name != make_secret(slug=b).name:
            assert sink.path_of(make_secret(slug=a)) != sink.path_of(make_secret(slug=b))


def test_long_names_that_share_a_start_get_distinct_files(tmp_path: Path) -> None:
    sink = DirectorySink(tmp_path)
    a = sink.deliver(make_secret("a" * 20, workspace="w" * 500 + "a"))
    b = sink.deliver(make_secret("b" * 20, workspace="w" * 500 + "b"))
    assert a != b
    assert Path(a).read_text() == "a" * 20 and Path(b).read_text() == "b" * 20


@pytest.mark.parametrize("level", ["organization", "workspace"])
def test_a_symlink_inside_the_root_is_refused(tmp_path: Path, level: str) -> None:
    root, elsewhere = tmp_path / "root", tmp_path / "elsewhere"
    elsewhere.mkdir()
    (root / "acme").mkdir(parents=True)
    planted = root / "acme" if level == "organization" else root / "acme" / "ws"
    if level == "organization":
        (root / "acme").rmdir()
    planted.symlink_to(elsewhere)
    secret = make_secret(organization="acme", workspace="ws", slug="s")
    with pytest.raises(SinkError) as error:
        DirectorySink(root).deliver(secret)
    message = failure(secret, error)
    assert "is a symbolic link or not a directory" in message
    assert list(elsewhere.iterdir()) == []  # nothing written through the link


def test_a_symlink_at_the_file_is_replaced_not_written_through(tmp_path: Path) -> None:
    root, target = tmp_path / "root", tmp_path / "target"
    target.write_text("untouched")
    (root / "acme" / "ws").mkdir(parents=True)
    (root / "acme" / "ws" / "RECALL_WS_S").symlink_to(target)
    secret = make_secret(organization="acme", workspace="ws", slug="s")
    path = Path(DirectorySink(root).deliver(secret))
    assert target.read_text() == "untouched"
    assert not path.is_symlink()
    assert path.read_bytes() == secret.value.encode()


def test_the_root_itself_may_be_a_symlink(tmp_path: Path) -> None:
    real, link = tmp_path / "real", tmp_path / "link"
    real.mkdir()
    link.symlink_to(real)
    secret = make_secret(organization="acme", workspace="ws", slug="s")
    DirectorySink(link).deliver(secret)
    assert (real / "acme" / "ws" / "RECALL_WS_S").read_bytes() == secret.value.encode()


def test_a_root_that_is_a_file_is_refused_when_the_sink_is_made(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    with pytest.raises(SinkError, match="is not a directory; give a directory"):
        DirectorySink(tmp_path / "file")


def test_an_empty_root_is_refused() -> None:
    with pytest.raises(SinkError, match="--secrets-dir needs a directory path"):
        sink_from_options("", None)


def test_a_file_where_a_directory_belongs_is_refused(tmp_path: Path) -> None:
    (tmp_path / "acme").write_text("a file, not a directory")
    secret = make_secret(organization="acme")
    with pytest.raises(SinkError) as error:
        DirectorySink(tmp_path).deliver(secret)
    assert "is a symbolic link or not a directory" in failure(secret, error)
    assert (tmp_path / "acme").read_text() == "a file, not a directory"


def test_a_directory_where_the_file_belongs_fails_cleanly(tmp_path: Path) -> None:
    (tmp_path / "acme" / "ws" / "RECALL_WS_S").mkdir(parents=True)
    secret = make_secret(organization="acme", workspace="ws", slug="s")
    with pytest.raises(SinkError) as error:
        DirectorySink(tmp_path).deliver(secret)
    message = failure(secret, error)
    assert message.startswith(
        f"cannot write the secret {secret.name} of webhook https://hooks.example.invalid/recall"
    )
    assert str(tmp_path / "acme" / "ws" / "RECALL_WS_S") in message
    assert sorted(p.name for p in (tmp_path / "acme" / "ws").iterdir()) == [
        "RECALL_WS_S"
    ]  # the temp file is gone


def test_a_root_that_cannot_be_created_fails_cleanly(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    secret = make_secret()
    with pytest.raises(SinkError) as error:
        DirectorySink(tmp_path / "file" / "below").deliver(secret)
    assert "--secrets-dir" in failure(secret, error)


def test_an_object_named_after_the_secret_does_not_show_it(tmp_path: Path) -> None:
    value = sentinel()
    (tmp_path / "acme").symlink_to(tmp_path)
    secret = make_secret(value, organization="acme", object=f"webhook https://x.invalid/{value}")
    with pytest.raises(SinkError) as error:
        DirectorySink(tmp_path).deliver(secret)
    assert "webhook https://x.invalid/***" in failure(secret, error)


def test_a_value_that_is_not_text_is_refused_without_showing_it(tmp_path: Path) -> None:
    secret = make_secret("SENTINEL-\ud800-" + secrets.token_hex(16))
    with pytest.raises(SinkError) as error:
        DirectorySink(tmp_path).deliver(secret)
    assert "is not valid text" in failure(secret, error)


# --- the command sink ------------------------------------------------------------------------

RECORDER = """
import json, os, sys
with open(sys.argv[1], "w") as out:
    json.dump({
        "stdin": sys.stdin.buffer.read().decode(),
        "argv": sys.argv[2:],
        "env": {k: v for k, v in os.environ.items() if k.startswith("PROVISIONER_SECRET_")},
        "all_env": "\\n".join(f"{k}={v}" for k, v in os.environ.items()),
    }, out)
"""


def recorder(tmp_path: Path) -> tuple[str, Path]:
    script, out = tmp_path / "recorder.py", tmp_path / "got.json"
    script.write_text(RECORDER)
    return f"{PYTHON} {shlex.quote(str(script))} {shlex.quote(str(out))}", out


def test_the_command_gets_the_exact_value_on_stdin_and_the_names_in_its_environment(tmp_path: Path) -> None:
    command, out = recorder(tmp_path)
    secret = make_secret(" whsec_" + secrets.token_urlsafe(24) + "\n")  # spaces and newline kept as they are
    where = CommandSink(command).deliver(secret)
    got = json.loads(out.read_text())
    assert got["stdin"] == secret.value
    assert got["env"] == {
        "PROVISIONER_SECRET_NAME": "RECALL_NOTETAKER_PRODUCTION_WEBHOOK_3F2A9C1B",
        "PROVISIONER_SECRET_ORGANIZATION": "Acme Inc.",
        "PROVISIONER_SECRET_WORKSPACE": "notetaker-production",
        "PROVISIONER_SECRET_ENVIRONMENT": "production",
        "PROVISIONER_SECRET_OBJECT": "webhook https://hooks.example.invalid/recall",
    }
    assert where == f"command {sys.executable} (name RECALL_NOTETAKER_PRODUCTION_WEBHOOK_3F2A9C1B)"
    assert_no_secret(secret.value.strip(), " ".join(got["argv"]), got["all_env"], where)


def test_the_environment_is_added_to_not_replaced(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SINK_TEST_INHERITED", "yes")
    command, out = recorder(tmp_path)
    CommandSink(command).deliver(make_secret(environment=None))
    got = json.loads(out.read_text())
    assert "SINK_TEST_INHERITED=yes" in got["all_env"].split("\n")
    assert got["env"]["PROVISIONER_SECRET_ENVIRONMENT"] == ""


def test_only_the_name_placeholder_is_replaced(tmp_path: Path) -> None:
    command, out = recorder(tmp_path)
    CommandSink(command + " {name} --secret={name}/x {other} '{\"k\": 1}' '{NAME}'").deliver(make_secret())
    assert json.loads(out.read_text())["argv"] == [
        "RECALL_NOTETAKER_PRODUCTION_WEBHOOK_3F2A9C1B",
        "--secret=RECALL_NOTETAKER_PRODUCTION_WEBHOOK_3F2A9C1B/x",
        "{other}",
        '{"k": 1}',
        "{NAME}",
    ]


def test_hostile_names_reach_the_command_as_plain_values_without_a_shell(tmp_path: Path) -> None:
    command, out = recorder(tmp_path)
    canary = tmp_path / "canary"
    hostile = f"$(touch {canary}); `touch {canary}` nul\0 \ud800"
    CommandSink(command + " {name}").deliver(
        make_secret(organization=hostile, workspace=hostile, object=hostile)
    )
    got = json.loads(out.read_text())
    assert not canary.exists()
    assert got["env"]["PROVISIONER_SECRET_WORKSPACE"] == hostile.replace("\0", "\\x00").replace(
        "\ud800", "\\ud800"
    )
    assert re.fullmatch(r"RECALL_[A-Z0-9_]+", got["argv"][0])


def test_the_commands_stdout_is_discarded(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    secret = make_secret()
    CommandSink(f"{PYTHON} -c 'import sys; sys.stdout.write(sys.stdin.read())'").deliver(secret)
    captured = capfd.readouterr()
    assert_no_secret(secret.value, captured.out, captured.err)


def test_a_failing_command_is_named_with_its_status_and_a_redacted_bounded_stderr(tmp_path: Path) -> None:
    # Echoes the secret to stderr: whole, cut across the excerpt's end, and as
    # a fragment; then a terminal escape and a forged workflow command.
    script = (
        "import sys; v = sys.stdin.read(); "
        "sys.stderr.write('error: bad ' + v + ' \\x1b[2J\\n::error::forged\\n' + 'x' * 470 + v + 'y' * 2000); "
        "sys.exit(3)"
    )
    secret = make_secret()
    with pytest.raises(SinkError) as error:
        CommandSink(f"{PYTHON} -c {shlex.quote(script)}").deliver(secret)
    message = failure(secret, error)
    head, _, stderr = message.partition("; its stderr:\n")
    assert head == (
        f"cannot deliver the secret {secret.name} of webhook https://hooks.example.invalid/recall: "
        f"command {sys.executable} exited with status 3"
    )
    assert stderr.startswith("  error: bad *** \\x1b[2J\n  \u2192 ::error::forged\n")
    assert "\x1b" not in stderr
    assert len(stderr) <= STDERR_EXCERPT + 50  # the excerpt, its indent and escapes
    assert stderr.endswith("…")


def test_a_command_killed_by_a_signal_says_so() -> None:
    secret = make_secret()
    with pytest.raises(SinkError) as error:
        CommandSink(f"{PYTHON} -c 'import os, signal; os.kill(os.getpid(), signal.SIGKILL)'").deliver(secret)
    assert "was killed by signal 9 and wrote nothing to stderr" in failure(secret, error)


def test_a_short_secret_is_redacted_too() -> None:
    secret = make_secret("s3cr3t")  # under the client's 8-character redaction floor
    with pytest.raises(SinkError) as error:
        CommandSink(f"{PYTHON} -c 'import sys; sys.stderr.write(sys.stdin.read()); sys.exit(1)'").deliver(
            secret
        )
    assert "s3cr3t" not in str(error.value)
    assert str(error.value).endswith("; its stderr:\n  ***")


def test_a_short_secret_across_the_excerpts_end_is_redacted_before_the_cut() -> None:
    secret = make_secret("Zq9#Wv")
    script = "import sys; v = sys.stdin.read(); sys.stderr.write('a' * 497 + v + 'b' * 100); sys.exit(1)"
    with pytest.raises(SinkError) as error:
        CommandSink(f"{PYTHON} -c {shlex.quote(script)}").deliver(secret)
    assert "Zq9" not in str(error.value)  # cut first, then redacted, would leave half of it
    assert "a" * 497 + "***" in str(error.value)


def test_a_command_that_does_not_finish_is_stopped() -> None:
    secret = make_secret()
    # The child sleeps; the test does not: it waits only as long as the timeout.
    sink = CommandSink(f"{PYTHON} -c 'import sys, time; sys.stdin.read(); time.sleep(600)'", timeout=0.5)
    with pytest.raises(SinkError) as error:
        sink.deliver(secret)
    assert f"command {sys.executable} did not finish within 0.5 s and was stopped" in failure(secret, error)


def test_a_command_that_is_not_found_is_refused_when_the_sink_is_made() -> None:
    with pytest.raises(
        SinkError, match="command no-such-command-for-sinks not found; install it, put it on PATH"
    ):
        CommandSink("no-such-command-for-sinks {name}")


def test_a_command_that_disappears_before_delivery_is_reported_as_not_found(tmp_path: Path) -> None:
    program = tmp_path / "store-secret"
    program.write_text(f"#!{sys.executable}\n")
    program.chmod(0o700)
    sink = CommandSink(str(program))
    program.unlink()
    secret = make_secret()
    with pytest.raises(SinkError) as error:
        sink.deliver(secret)
    assert f"command {program} not found" in failure(secret, error)


@pytest.mark.parametrize(
    ("command", "says"),
    [
        ("", "--secrets-command is empty; give the command that stores a secret"),
        ("   ", "--secrets-command is empty"),
        (
            "gh secret set 'unterminated",
            "--secrets-command cannot be read (No closing quotation); write one command",
        ),
        ("gh\0 x", "contains a NUL character"),
    ],
)
def test_a_command_line_that_cannot_be_used_says_how_to_write_it(command: str, says: str) -> None:
    with pytest.raises(SinkError) as error:
        sink_from_options(None, command)
    assert says in str(error.value)
