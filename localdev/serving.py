"""Serving a local stand-in (the Postmark simulator) over real HTTP on 127.0.0.1, in a thread."""

import socketserver
import threading
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server


class _ThreadingWSGIServer(socketserver.ThreadingMixIn, WSGIServer):
    daemon_threads = True  # a request sleeping through a timeout fault must not block shutdown


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format, *args):
        pass


def serve(simulator, host: str = "127.0.0.1", port: int = 0, *, app=None):
    """Serve in a background thread; `server.server_address` has the port, `server.shutdown()` stops it.

    `app` may wrap the simulator (local mode saves its state after each change).
    """
    simulator.timeout_by_sleeping = True
    server = make_server(host, port, app or simulator, server_class=_ThreadingWSGIServer, handler_class=_QuietHandler)
    thread = threading.Thread(target=server.serve_forever, name="postmark-simulator", daemon=True)
    thread.start()
    return server, thread


def serve_until_stopped(server) -> None:
    """A simulator command's main loop: serve until SIGTERM or Ctrl-C, then shut the server down."""
    import signal

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        stop.wait()
    except KeyboardInterrupt:
        pass
    server.shutdown()
