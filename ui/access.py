"""The access gate every page passes first: who may use this app (see trust_core.access)."""
from __future__ import annotations

import os

import streamlit as st

from trust_core.access import serving_policy, user_allowed


def access_gate() -> None:
    """Refuse to serve beyond this machine without authentication; ask visitors to log in when set."""
    try:
        auth_configured = "auth" in st.secrets
    except Exception:  # no secrets.toml at all
        auth_configured = False
    decision = serving_policy(st.get_option("server.address"), auth=os.environ.get("TRUST_AUTH"),
                              auth_configured=auth_configured, allowed_users=os.environ.get("TRUST_ALLOWED_USERS"))
    if not decision.allowed:
        st.error(f"🔒 {decision.message}")
        st.stop()
    if decision.login_required:
        if not st.user.get("is_logged_in", False):
            st.info(decision.message)
            st.button("Log in", on_click=st.login, type="primary")
            st.stop()
        if not user_allowed(decision, st.user.get("email")):
            st.error("🔒 Your account is not on this app's list of users (TRUST_ALLOWED_USERS).")
            st.button("Log out", on_click=st.logout)
            st.stop()
