"""Who may reach the app, and which folders it may read. Pure policy: no Streamlit here.

- **Listening address.** The app listens on 127.0.0.1 (``.streamlit/config.toml``). Serving it on any
  other address is refused unless authentication is configured: ``TRUST_AUTH=streamlit`` with an
  ``[auth]`` section in ``.streamlit/secrets.toml`` (Streamlit's built-in OpenID Connect login), and
  optionally ``TRUST_ALLOWED_USERS`` (comma-separated e-mail addresses). The other supported set-up
  keeps the app on 127.0.0.1 behind an authenticating reverse proxy (SECURITY.md shows one).
- **Folders.** A workspace or dataset folder typed in the app must lie inside one of the configured
  roots: ``TRUST_ROOTS`` (paths separated by ``os.pathsep``), by default the workspace the app was
  started with. Paths are resolved (``..`` and symbolic links) before the check, so no escape.
"""
from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from .errors import TrustError

LOOPBACK_NAMES = {"localhost", "ip6-localhost"}


class AccessError(TrustError):
    """A folder outside the configured roots, or serving without authentication."""


def is_loopback(address: str | None) -> bool:
    """True for addresses only this machine can reach ('' means every interface: not loopback)."""
    address = (address or "").strip().strip("[]")
    if address.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class ServingDecision:
    allowed: bool
    login_required: bool
    message: str
    allowed_users: tuple[str, ...] = ()


def serving_policy(address: str | None, *, auth: str | None, auth_configured: bool,
                   allowed_users: str | None = None) -> ServingDecision:
    """Whether the app may serve on ``address`` and whether each visitor must log in first.

    Parameters
    ----------
    address : Streamlit's ``server.address`` ('' = every interface).
    auth : the ``TRUST_AUTH`` setting: None/'' (none) or 'streamlit'.
    auth_configured : whether ``st.secrets`` has an ``[auth]`` section (an OpenID Connect provider).
    allowed_users : ``TRUST_ALLOWED_USERS``, comma-separated e-mails (empty = any authenticated user).
    """
    users = tuple(u.strip().lower() for u in (allowed_users or "").split(",") if u.strip())
    auth = (auth or "").strip().lower()
    if auth not in ("", "streamlit"):
        return ServingDecision(False, False, f"TRUST_AUTH={auth!r} is not a known setting: use 'streamlit' "
                                             "(Streamlit's built-in login) or leave it unset.")
    if auth == "streamlit":
        if not auth_configured:
            return ServingDecision(False, False, "TRUST_AUTH=streamlit needs an [auth] section (an OpenID Connect "
                                                 "provider) in .streamlit/secrets.toml — see SECURITY.md.")
        return ServingDecision(True, True, "Log in to use the Saliency Trust Explorer.", users)
    if is_loopback(address):
        return ServingDecision(True, False, "")
    shown = address or "every network interface"
    return ServingDecision(False, False, f"This app is set to listen on {shown}, where other computers can reach "
                                         "it, but no authentication is configured. Patient images must not be "
                                         "served without it: set TRUST_AUTH=streamlit with an [auth] provider, "
                                         "or keep server.address = 127.0.0.1 behind an authenticating reverse "
                                         "proxy (SECURITY.md).")


def user_allowed(decision: ServingDecision, email: str | None) -> bool:
    return not decision.allowed_users or (email or "").strip().lower() in decision.allowed_users


def configured_roots(default: str | Path | None = None) -> list[Path]:
    """The folders the app may read: ``TRUST_ROOTS``, else ``default`` (the starting workspace)."""
    text = os.environ.get("TRUST_ROOTS", "")
    roots = [Path(p).expanduser() for p in text.split(os.pathsep) if p.strip()]
    if not roots and default is not None:
        roots = [Path(default)]
    return [r.resolve() for r in roots]


def confine(path: str | Path, roots: list[Path]) -> Path:
    """``path`` resolved, if it lies inside one of ``roots``; else :class:`AccessError`."""
    text = str(path).strip()
    if not text or "\x00" in text:
        raise AccessError("an empty or invalid folder name")
    resolved = Path(text).expanduser().resolve()
    for root in roots:
        if resolved == root or resolved.is_relative_to(root):
            return resolved
    listed = ", ".join(str(r) for r in roots) or "none"
    raise AccessError(f"the folder {text!r} is outside the folders this app may read ({listed}). Ask "
                      "whoever runs the app to add it to TRUST_ROOTS.")
