"""Keyed pseudonyms of image ids: what reports, exports and the app show instead of the ids.

An image id is a dataset's file key (RSNA's ``patientId``, SIIM's ``ImageId``…), and the lists of those
keys are public. An unkeyed hash of the id could be reversed by hashing the public list once, so the
pseudonym is ``img-`` + the first 10 hex digits of HMAC-SHA256(key, id), with a secret key per workspace:

- The key is 32 random bytes (:func:`secrets.token_bytes`) in the workspace's
  :attr:`Layout.pseudonym_key <trust_core.layout.Layout.pseudonym_key>` (``<workspace>/pseudonym.key``),
  created on first use with mode 0600 (:func:`trust_core.io.create_once`: atomically, and never replaced
  or rewritten — of processes racing to create it one wins and all use its key).
- The same id gets the same pseudonym in that workspace in every process: the app, its sessions and the
  CLI; another workspace has another key, so its pseudonyms differ (copying the key file to another
  workspace shares them on purpose).
- The key never leaves the workspace folder: no report, export or page holds it. Deleting it makes a new
  key on next use, and every pseudonym of the workspace changes; keep it (and back it up) with the results.
- A key file that cannot be read, created or is damaged raises :class:`~trust_core.errors.ConfigError`
  naming the file and the fix; there is no fallback to an unkeyed hash.

There is no process-wide key: every lookup reads the key file of the workspace it is given (32 bytes; get a
:func:`pseudonymizer` once to name many images), so two workspaces used by one process never share a key,
and a process never keeps using a key that was replaced on disk.
"""
from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import time
from collections.abc import Callable
from pathlib import Path

from .errors import ConfigError
from .io import create_once
from .layout import Layout

KEY_BYTES = 32
PREFIX = "img-"
DIGITS = 10


def _root(workspace) -> Path:
    """The folder of a workspace given as a :class:`~trust_core.workspace.Workspace`, a ``Layout`` or a path."""
    if workspace is None or isinstance(workspace, (str, os.PathLike)):  # (a Path's own .root is "/")
        return Layout.of(workspace).root
    return Path(workspace.root)


def workspace_key(workspace) -> bytes:
    """The workspace's secret pseudonym key, created (once, mode 0600) when the workspace has none yet."""
    root = _root(workspace)
    path = Layout(root).pseudonym_key
    if not os.path.lexists(path):
        _create(root, path)  # (whoever wins a race to create it, every process then reads the same file)
    return _read(path)


def pseudonymizer(workspace) -> Callable[[str], str]:
    """The workspace's naming of images: ``image_id`` → ``img-`` + 10 hex digits (the key read once)."""
    key = workspace_key(workspace)
    return lambda image_id: keyed_pseudonym(key, image_id)


def pseudonym(image_id: str, workspace) -> str:
    """The pseudonym of one image of ``workspace`` (many images: :func:`pseudonymizer`)."""
    return keyed_pseudonym(workspace_key(workspace), image_id)


def image_of(name: str, ids, workspace) -> str | None:
    """The image id among ``ids`` whose pseudonym in ``workspace`` is ``name`` (as the reports and pages show
    it), or None: the way back from a pseudonym, for the holder of the workspace's key."""
    if not name.startswith(PREFIX):
        return None
    named = pseudonymizer(workspace)
    return next((i for i in ids if named(i) == name), None)


def keyed_pseudonym(key: bytes, image_id: str) -> str:
    return PREFIX + hmac.new(key, str(image_id).encode("utf-8"), hashlib.sha256).hexdigest()[:DIGITS]


def _create(root: Path, path: Path) -> None:
    if not root.is_dir():
        raise ConfigError(f"the workspace folder {root} does not exist, so its pseudonym key {path} cannot be "
                          f"created: check the workspace (--workspace or TRUST_WORKSPACE)", path=path)
    try:
        create_once(path, secrets.token_bytes(KEY_BYTES), mode=0o600)  # False: another process made it first
    except OSError as exc:
        raise ConfigError(f"cannot create the workspace's pseudonym key {path} ({exc.strerror or exc}): make "
                          f"the folder {root} writable for this user once (the key is created on first use and "
                          f"never rewritten), or copy in a key you already use; pseudonyms are never made "
                          f"without it", path=path) from None


def _read(path: Path) -> bytes:
    """The key file's bytes; a short file is retried briefly (one being created in place on a filesystem
    without hard links), then refused."""
    for _ in range(20):
        try:
            with open(path, "rb") as fh:
                stat = os.fstat(fh.fileno())
                key = fh.read(KEY_BYTES + 1)
        except OSError as exc:
            raise _unreadable(path, exc) from None
        if len(key) == KEY_BYTES:
            return key
        if len(key) > KEY_BYTES or time.time() - stat.st_mtime > 2:
            break
        time.sleep(0.05)
    raise ConfigError(f"the pseudonym key {path} is damaged ({len(key)} bytes, not {KEY_BYTES}): restore it from "
                      f"a backup of the workspace. Deleting it makes a new key, and every pseudonym of this "
                      f"workspace changes (earlier reports and exports no longer match)", path=path)


def _unreadable(path: Path, exc: OSError) -> ConfigError:
    return ConfigError(f"the pseudonym key {path} cannot be read ({exc.strerror or exc}): give the user running "
                       f"trust or the app read access to it (chmod 600 and chown to that user); do not delete it "
                       f"unless you want every pseudonym of this workspace to change", path=path)
