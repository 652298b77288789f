"""``stream-cf serve``: the latest lists of the output topic over HTTP, with live updates.

One concept per module, in the order data flows:

- ``settings``: :class:`ServeSettings` (flags or ``STREAM_CF_*``; the processor's connection
  fields);
- ``held_list``: one output record as held, its JSON answer rendered once;
- ``view``: :class:`ListView`, the latest list of every user (tombstones remove) and the
  popularity list of ``?fallback=popular``;
- ``progress``: positions, ends, lags and rates of the output topic and of the processor's input;
- ``follower``: the thread that reads the topic to its end, then follows it (kafka-python);
- ``changes``: per-user change notification from that thread to the SSE streams (asyncio);
- ``schemas``, ``metrics``, ``app``: the FastAPI app, its OpenAPI models, its Prometheus metrics;
- ``server``: uvicorn in the foreground or in a thread; ``static/index.html``: the live page.
"""

from stream_cf.serve.app import ServeState, build_state, create_app
from stream_cf.serve.server import BackgroundServer, serve_forever
from stream_cf.serve.settings import ServeSettings, load_serve_settings
from stream_cf.serve.view import ListView

__all__ = [
    "BackgroundServer",
    "ListView",
    "ServeSettings",
    "ServeState",
    "build_state",
    "create_app",
    "load_serve_settings",
    "serve_forever",
]
