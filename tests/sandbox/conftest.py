"""Helpers for the sandbox's tests: a tiny HTTP client bound to one key."""

from __future__ import annotations

from typing import Any

import pytest
import requests

from provisioner.sandbox import RunningSandbox, create_token


class Api:
    """Real HTTP to a sandbox with one key. Paths are relative to /api/v1 (``/users/``)."""

    def __init__(self, base_url: str, token: str | None) -> None:
        self.base_url = base_url
        self.session = requests.Session()
        if token is not None:
            self.session.headers["Authorization"] = f"Token {token}"

    def request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        url = path if path.startswith("http") else self.base_url + path
        return self.session.request(method, url, timeout=10, **kwargs)

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, json: Any = None, **kwargs: Any) -> requests.Response:
        return self.request("POST", path, json=json, **kwargs)

    def patch(self, path: str, json: Any = None, **kwargs: Any) -> requests.Response:
        return self.request("PATCH", path, json=json, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("DELETE", path, **kwargs)

    def walk(self, path: str) -> list[dict[str, Any]]:
        """Every item of a list, following ``next``."""
        items: list[dict[str, Any]] = []
        url: str | None = path
        while url:
            response = self.get(url)
            assert response.status_code == 200, response.text
            page = response.json()
            items.extend(page["results"])
            url = page["next"]
        return items


@pytest.fixture
def api(sandbox: RunningSandbox) -> Api:
    """The admin's client on the default checked sandbox."""
    return Api(sandbox.base_url, sandbox.token)


@pytest.fixture
def workspace(api: Api) -> dict[str, Any]:
    """A workspace made by the admin."""
    response = api.post("/workspaces/", {"name": "notetaker-production"})
    assert response.status_code == 201, response.text
    return dict(response.json())


@pytest.fixture
def developer_api(sandbox: RunningSandbox, api: Api) -> Api:
    """A developer's client (the admin invites dev@example.com)."""
    response = api.post("/users/", {"email": "dev@example.com", "role": "developer"})
    assert response.status_code == 201, response.text
    return Api(sandbox.base_url, create_token(sandbox.db_path, "dev@example.com"))
