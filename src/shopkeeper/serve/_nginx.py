"""An nginx configuration that load-balances several `shopkeeper serve` replicas.

Replicas are stateless over immutable snapshots, so any replica can answer any request;
nginx spreads requests round-robin (least connections when asked), keeps connections
to the replicas alive, and takes a replica out for `fail_timeout` after a failed
connection. A GET or HEAD whose replica refuses or drops the connection is retried on
another one, so losing a replica costs no read. POST /events is never retried by nginx:
the replica may have stored it before it died, and a retry could store it twice; a
client that gets 502 retries it itself.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from shopkeeper.errors import ConfigError

if TYPE_CHECKING:
    from collections.abc import Sequence
    from pathlib import Path

_ADDRESS = re.compile(r"^(?:[A-Za-z0-9.-]+|\[[0-9A-Fa-f:]+\]):\d{1,5}$")


def _check_address(address: str) -> str:
    if not _ADDRESS.match(address) or not 0 < int(address.rsplit(":", 1)[1]) < 65536:
        raise ConfigError(f"not a HOST:PORT address: {address!r}")
    return address


def nginx_config(
    upstreams: Sequence[str],
    *,
    listen: str = "127.0.0.1:8080",
    prefix: Path | None = None,
    least_conn: bool = False,
    fail_timeout_s: int = 5,
    max_body_bytes: int = 1_048_576,
) -> str:
    """The text of a complete `nginx.conf` fronting `upstreams` (HOST:PORT each).

    Args:
        upstreams: The replicas' addresses.
        listen: Where nginx listens (HOST:PORT).
        prefix: When given, nginx keeps its pid, error log and temporary files under
            this folder (which must hold `tmp/<kind>` for each of `TEMP_KINDS`), so it
            runs unprivileged and beside any other nginx (`nginx -p PREFIX`).
        least_conn: Send each request to the replica with the fewest open requests
            instead of round-robin (better when request costs differ, e.g. searches).
        fail_timeout_s: How long a replica that failed a connection is left out.
        max_body_bytes: Largest request body nginx passes on (the replicas refuse more
            with 413 themselves; nginx refusing first saves them the upload).

    Raises:
        ConfigError: no upstreams, or an address that is not HOST:PORT.
    """
    if not upstreams:
        raise ConfigError("nginx needs at least one upstream replica")
    servers = "\n".join(
        f"        server {_check_address(u)} max_fails=1 fail_timeout={fail_timeout_s}s;"
        for u in upstreams
    )
    _check_address(listen)
    own_main, own_http = _own_files(prefix)
    balance = "        least_conn;\n" if least_conn else ""
    return f"""# nginx in front of {len(upstreams)} Shopkeeper replicas (`shopkeeper nginx-config`).
worker_processes 1;
{own_main}events {{
    worker_connections 1024;
}}
http {{
    access_log off;  # the replicas log each request by route, never by raw path (ids)
{own_http}    client_max_body_size {max_body_bytes};
    upstream shopkeeper {{
{balance}{servers}
        keepalive 32;
    }}
    server {{
        listen {listen};
        location / {{
            proxy_pass http://shopkeeper;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_connect_timeout 1s;
            proxy_read_timeout 10s;
            proxy_next_upstream error timeout;
            proxy_next_upstream_tries 2;
        }}
    }}
}}
"""


TEMP_KINDS = ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
"""nginx's temporary folders; with a prefix, each lives under PREFIX/tmp/ (made by the caller)."""


def _own_files(prefix: Path | None) -> tuple[str, str]:
    """Lines of the main and the http context that keep nginx's files under `prefix`."""
    if prefix is None:
        return "", ""
    here = str(prefix).rstrip("/") + "/"
    main = f"pid {here}nginx.pid;\nerror_log {here}error.log warn;\n"
    http = "".join(f"    {kind}_temp_path {here}tmp/{kind};\n" for kind in TEMP_KINDS)
    return main, http
