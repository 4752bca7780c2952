"""The web dashboard under `/ui/`: catalog, assets, lineage, models, playground, live view.

Server-rendered (Jinja2 templates, SVG charts drawn on the server, a little vanilla JS);
every script, style and icon is served from `/ui/static/`, so it works offline.
"""

from __future__ import annotations

from shopkeeper.serve.ui.routes import STATIC_DIR, router

__all__ = ["STATIC_DIR", "router"]
