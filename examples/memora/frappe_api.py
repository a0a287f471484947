"""The Frappe whitelist wrapper of memora_srs (a thin layer: config, user, season).

In a Frappe app: put this file and memora_srs.py in the app's package,
install the srsproxy client (clients/python) and set in site_config.json:

    "srsproxy_host": "127.0.0.1", "srsproxy_port": 6380,
    "srsproxy_password": "...",           (if the sidecar wants one)
    "srsproxy_season": "SEASON-2026"

Then call /api/method/<app>.frappe_api.get_review_session and
.submit_review_session as memora's front end does. Without Frappe (tests,
scripts) importing this module works and the functions are plain ones.
"""

from __future__ import annotations

from typing import Any, Optional

import srsproxy

import memora_srs

try:  # Frappe is there only inside a bench.
    import frappe
except ImportError:  # pragma: no cover - exercised by the tests without Frappe
    frappe = None

_client: Optional[srsproxy.Client] = None


def _whitelist(fn):
    return frappe.whitelist()(fn) if frappe is not None else fn


def _conf(key: str, default: Any = None) -> Any:
    if frappe is None:
        return default
    return frappe.conf.get(key, default)


def client() -> srsproxy.Client:
    """One client per worker process (redis-py pools its connections)."""
    global _client
    if _client is None:
        r = srsproxy.connect(_conf("srsproxy_host", "127.0.0.1"), int(_conf("srsproxy_port", 6380)),
                             password=_conf("srsproxy_password"), decode_responses=True, socket_timeout=2)
        _client = srsproxy.Client(r)
    return _client


def _player() -> str:
    if frappe is None:
        raise RuntimeError("no Frappe session: call memora_srs directly")
    return frappe.session.user


def _season() -> str:
    season = _conf("srsproxy_season")
    if not season:
        raise RuntimeError("site_config.json has no srsproxy_season")
    return season


@_whitelist
def get_review_session(subject: Optional[str] = None, topic_id: Optional[str] = None):
    return memora_srs.get_review_session(client(), _player(), _season(), subject=subject, topic_id=topic_id)


@_whitelist
def submit_review_session(session_data):
    return memora_srs.submit_review_session(client(), _player(), _season(), session_data)
