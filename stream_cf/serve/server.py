"""Running the app with uvicorn: in the foreground (``stream-cf serve``) or from a thread
(``stream-cf demo --serve``, the tests, the benchmark).

uvicorn runs with httptools (its fast HTTP/1.1 parser) and uvloop where installed, one process:
the view lives in this process's memory, so more workers would each read the whole topic. Access
logs are off (the request metrics count every request). On shutdown, SSE streams still open are
ended first (:meth:`ChangeHub.close`); requests still running after ``GRACEFUL_SECONDS``
are cancelled.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import signal
import socket
import threading
import time
from collections.abc import Iterator
from types import TracebackType

import uvicorn

from stream_cf.exceptions import ConfigError, StreamCFError
from stream_cf.serve.app import ServeState, build_state, create_app
from stream_cf.serve.joined_writes import JoinedWritesProtocol
from stream_cf.serve.settings import ServeSettings

logger = logging.getLogger(__name__)

GRACEFUL_SECONDS = 2
_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class _Server(uvicorn.Server):
    """uvicorn's server, which ends the SSE streams when it stops (else they would hold the
    graceful shutdown until its timeout)."""

    def __init__(self, state: ServeState) -> None:
        super().__init__(_config(state))
        self._hub = state.hub

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        self._hub.close()
        await super().shutdown(sockets)

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        """SIGINT and SIGTERM stop the server and the command exits 0, as ``stream-cf run``
        does (uvicorn's own handlers raise the signal again once stopped)."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = {sig: signal.signal(sig, self.handle_exit) for sig in _STOP_SIGNALS}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


def _config(state: ServeState) -> uvicorn.Config:
    settings = state.settings
    return uvicorn.Config(
        create_app(state),
        host=settings.host,
        port=settings.port,
        http=JoinedWritesProtocol,  # httptools, an answer's headers and body in one write
        ws="none",
        loop="uvloop" if importlib.util.find_spec("uvloop") is not None else "asyncio",
        lifespan="on",
        access_log=False,
        proxy_headers=False,  # the client's address is not used
        log_config=None,  # the CLI's logging configuration
        timeout_graceful_shutdown=GRACEFUL_SECONDS,
        server_header=False,
    )


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on (host, port); ConfigError naming them if it cannot be had."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ConfigError(
            f"cannot serve on {host}:{port}: {exc.strerror or exc}; choose another --port "
            "(0: any free port) or --host"
        ) from exc
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def serve_forever(settings: ServeSettings) -> None:
    """Serve until SIGINT or SIGTERM (uvicorn's handlers), in the foreground."""
    state = build_state(settings)
    sock = bind(settings.host, settings.port)
    host, port = sock.getsockname()[:2]
    logger.info(
        "serving %s on http://%s:%d/ (API: /docs, health: /healthz, metrics: /metrics)",
        settings.output_topic,
        host,
        port,
    )
    server = _Server(state)
    server.run(sockets=[sock])


class BackgroundServer:
    """The server in a daemon thread: ``with BackgroundServer(settings) as server: server.url``.

    Port 0 takes a free port. :meth:`start` returns once the server accepts connections (the
    follower may still be reading the topic: :meth:`wait_ready`)."""

    def __init__(self, settings: ServeSettings, state: ServeState | None = None) -> None:
        self.settings = settings
        self.state = state or build_state(settings)
        self._server = _Server(self.state)
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    @property
    def url(self) -> str:
        """``http://host:port`` (the bound address)."""
        if self._sock is None:
            raise RuntimeError("the server is not started")
        host, port = self._sock.getsockname()[:2]
        shown = f"[{host}]" if ":" in host else host
        return f"http://{shown}:{port}"

    def start(self, timeout: float = 30.0) -> str:
        """Start serving; the base URL."""
        self._sock = bind(self.settings.host, self.settings.port)
        self._thread = threading.Thread(target=self._run, name="stream-cf-serve", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if self._error is not None or not self._thread.is_alive():
                raise StreamCFError(f"the server did not start: {self._error!r}")
            if time.monotonic() > deadline:
                raise StreamCFError(f"the server did not start within {timeout:g} s")
            time.sleep(0.01)  # uvicorn sets `started` from its own thread; bounded above
        return self.url

    def wait_ready(self, timeout: float | None = None) -> bool:
        """Block until the view caught up with the topic (or ``timeout``); whether it did."""
        return self.state.progress.wait_ready(timeout)

    def stop(self) -> None:
        """Stop serving (open SSE streams are closed after a short grace) and the follower."""
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(GRACEFUL_SECONDS + 15)
        if self._sock is not None:
            self._sock.close()

    def __enter__(self) -> BackgroundServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def _run(self) -> None:
        try:
            assert self._sock is not None
            self._server.run(sockets=[self._sock])  # no signal handlers outside the main thread
        except BaseException as exc:  # reported by start() and logged
            self._error = exc
            logger.exception("the server stopped")
