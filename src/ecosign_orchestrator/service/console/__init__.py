"""The operator console at ``/ui``: flows, their steps and Edge calls, live, in a web page.

Server-rendered HTML (Jinja2, autoescaped) with plain ES modules fed by the ``/v1`` API and its
event stream; no build step, no CDN: every asset ships in the package. The pages hold no data
of their own: the browser reads it with the operator's token, so the console shows exactly what
the API shows that token.
"""

from __future__ import annotations

from ecosign_orchestrator.service.console.pages import install

__all__ = ["install"]
