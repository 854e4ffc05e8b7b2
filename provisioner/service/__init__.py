"""The commands as plain functions: what ``provisioner`` does, callable from Python without click.

As Alembic's ``command.py`` is to its ``config.py``, this package is to
``provisioner.cli``: the CLI parses options, calls one function here and
renders what comes back. One module per command, so that a command imports
only what it uses (``validate`` never loads the HTTP client):

=====================  ==========================================================
``service.plan``       ``plan_orgs``; and the phases every command shares:
                       ``read_and_diff``, ``guard``, ``check_not_stale``
``service.apply``      ``apply_orgs``: prepare every organization, confirm, apply
                       each, write the audit record; ``ApplyOptions``
``service.drift``      ``drift_orgs``
``service.export``     ``export_org``
``service.validate``   ``validate``
``service.runner``     the one multi-organization runner (``run_organizations``)
                       and exit codes (0 no changes, 1 error, 2 changes/drift)
``service.connection`` ``connect``: endpoint + API client; ``client_limits_from_env``
``service.interrupt``  SIGINT/SIGTERM during an apply: stop, then abort
=====================  ==========================================================

Decisions worth knowing:

* Nothing here prints. Results are frozen dataclasses; where a person must see
  something *during* a run (a plan before the confirmation prompt, a refusal
  as soon as it happens, progress) the caller passes a callback.
* Every failure is a ``ProvisionerError``. Errors of one organization are
  kept in its ``Outcome`` so the others still run; the CLI turns both kinds
  into messages in one place.
"""
