"""Entry point: `python3 -m service`. Listens on HOST:PORT (defaults 127.0.0.1:8000)."""

import os
import signal
import sys
from socketserver import ThreadingMixIn
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from .app import App


class ThreadingWSGIServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class QuietHandler(WSGIRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 - the signature is the standard library's
        sys.stderr.write("%s %s\n" % (self.address_string(), format % args))


def _stop(signum, frame):
    # SIGTERM (how the preview is stopped) ends serve_forever the way Ctrl-C does.
    raise KeyboardInterrupt


def main():
    host = os.environ.get("HOST", "127.0.0.1")
    port = int(os.environ.get("PORT", "8000"))
    server = make_server(host, port, App(), server_class=ThreadingWSGIServer, handler_class=QuietHandler)
    signal.signal(signal.SIGTERM, _stop)
    print(f"{{project_name}} listening on http://{host}:{server.server_port}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
