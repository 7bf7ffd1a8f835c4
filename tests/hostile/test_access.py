"""Access: loopback by default, authentication required beyond it, folders confined to the roots,
bounded uploads."""
from __future__ import annotations

import os
import tomllib

import pytest
from streamlit import config as st_config

from trust_core.access import AccessError, confine, configured_roots, is_loopback, serving_policy, user_allowed

from ..app.test_pages import ROOT, start


def test_shipped_server_config_is_local_and_bounded():
    config = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())
    assert config["server"]["address"] == "127.0.0.1"
    assert 0 < config["server"]["maxUploadSize"] <= 64
    assert config["browser"]["gatherUsageStats"] is False
    assert "--server.address 127.0.0.1" in (ROOT / "Makefile").read_text()


@pytest.mark.parametrize("address,loopback", [
    ("127.0.0.1", True), ("127.0.0.53", True), ("localhost", True), ("::1", True), ("[::1]", True),
    ("", False), ("0.0.0.0", False), ("::", False), ("10.1.2.3", False), ("pacs.hospital.org", False)])
def test_loopback_addresses(address, loopback):
    assert is_loopback(address) is loopback


def test_serving_policy():
    assert serving_policy("127.0.0.1", auth=None, auth_configured=False).allowed
    refused = serving_policy("0.0.0.0", auth=None, auth_configured=False)
    assert not refused.allowed and "no authentication is configured" in refused.message
    assert not serving_policy("", auth="", auth_configured=False).allowed  # '' = every interface
    assert not serving_policy("0.0.0.0", auth="streamlit", auth_configured=False).allowed
    assert not serving_policy("0.0.0.0", auth="basic", auth_configured=True).allowed
    login = serving_policy("0.0.0.0", auth="streamlit", auth_configured=True, allowed_users="A@x.org, b@y.org")
    assert login.allowed and login.login_required and login.allowed_users == ("a@x.org", "b@y.org")
    assert user_allowed(login, "a@X.org") and not user_allowed(login, "eve@z.org") and not user_allowed(login, None)
    anyone = serving_policy("0.0.0.0", auth="streamlit", auth_configured=True)
    assert user_allowed(anyone, "eve@z.org")
    # even on loopback, configured authentication is enforced
    assert serving_policy("127.0.0.1", auth="streamlit", auth_configured=True).login_required


def test_confine(tmp_path, monkeypatch):
    root = tmp_path / "data"
    (root / "rsna").mkdir(parents=True)
    (tmp_path / "data-private").mkdir()
    (root / "escape").symlink_to(tmp_path / "data-private")
    roots = [root.resolve()]
    assert confine(root / "rsna", roots) == (root / "rsna").resolve()
    assert confine(root, roots) == root.resolve()
    for bad in (root / ".." / "data-private", tmp_path / "data-private", root / "escape", "/etc/../etc",
                f"{root}/rsna/../../data-private", "", "a\x00b"):
        with pytest.raises(AccessError):
            confine(bad, roots)
    monkeypatch.setenv("TRUST_ROOTS", os.pathsep.join([str(root), str(tmp_path / "other")]))
    assert configured_roots("ignored") == [root.resolve(), (tmp_path / "other").resolve()]
    monkeypatch.delenv("TRUST_ROOTS")
    assert configured_roots(tmp_path) == [tmp_path.resolve()]


@pytest.fixture
def served_on(monkeypatch):
    previous = st_config.get_option("server.address")

    def set_address(address):
        st_config.set_option("server.address", address)
    yield set_address
    st_config.set_option("server.address", previous)


def test_app_refuses_to_serve_others_without_authentication(app_workspace, monkeypatch, served_on):
    monkeypatch.delenv("TRUST_AUTH", raising=False)
    served_on("0.0.0.0")
    at = start(app_workspace, monkeypatch)
    assert any("no authentication is configured" in e.value for e in at.error)
    assert not at.sidebar.text_input and not at.title  # nothing of the workspace is shown


def test_app_asks_for_login_when_authentication_is_on(app_workspace, monkeypatch, served_on):
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("TRUST_WORKSPACE", str(app_workspace))
    monkeypatch.setenv("TRUST_AUTH", "streamlit")
    monkeypatch.chdir(ROOT)
    served_on("0.0.0.0")
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.run()  # no [auth] provider configured: refused with the reason
    assert any("needs an [auth] section" in e.value for e in at.error)
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.secrets["auth"] = {"redirect_uri": "https://xai.example.org/oauth2callback", "cookie_secret": "s3cret",
                          "client_id": "id", "client_secret": "secret",
                          "server_metadata_url": "https://login.example.org/.well-known/openid-configuration"}
    at.run()
    assert not at.exception
    assert [b.label for b in at.button] == ["Log in"]
    assert not at.sidebar.text_input and not at.title

