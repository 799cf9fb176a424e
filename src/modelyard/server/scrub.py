"""Upstream error text on its way to clients, without internal hostnames.

An upstream's (or a proxy's) error message may name hosts the caller should never
learn: the deployments' base URLs, `host:port` pairs, IP addresses, URLs. They are
replaced by `<upstream>` in what the client sees; the ledger keeps the full text
for operators.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Final
from urllib.parse import urlsplit

_URL: Final = re.compile(r"\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s\"'<>)]+")
_IPV4: Final = re.compile(r"\b\d{1,3}(?:\.\d{1,3}){3}(?::\d{1,5})?\b")
# A name that starts with a letter, then a port: `db-proxy:8080`, `llm.corp:443`
# (a timestamp's `T00:00` does not start at a word boundary, so it is kept).
_HOST_PORT: Final = re.compile(r"\b[A-Za-z][A-Za-z0-9-]*(?:\.[A-Za-z0-9-]+)*:\d{2,5}\b")
_HIDDEN: Final = "<upstream>"
_known: set[str] = set()


def remember_hosts(base_urls: Iterable[str]) -> None:
    """Hosts of the configured deployments, scrubbed wherever they appear."""
    for url in base_urls:
        host = urlsplit(url).hostname
        if host and len(host) > 3:
            _known.add(host)


def scrub(text: str) -> str:
    """`text` with URLs, IPs, host:port pairs and configured hosts replaced."""
    text = _URL.sub(_HIDDEN, text)
    text = _IPV4.sub(_HIDDEN, text)
    text = _HOST_PORT.sub(_HIDDEN, text)
    for host in _known:
        if host in text:
            text = text.replace(host, _HIDDEN)
    return text
