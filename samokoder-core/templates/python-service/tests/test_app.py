import io
import json
import threading
import unittest
import urllib.error
import urllib.request
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server
from wsgiref.util import setup_testing_defaults

from service.app import App


def call(app, method, path, body=None, content_type="application/json"):
    """Calls the WSGI app in-process and returns (status code, parsed JSON or None)."""
    raw = b"" if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
    environ = {}
    setup_testing_defaults(environ)
    environ.update(
        {
            "REQUEST_METHOD": method,
            "PATH_INFO": path,
            "CONTENT_TYPE": content_type,
            "CONTENT_LENGTH": str(len(raw)),
            "wsgi.input": io.BytesIO(raw),
        }
    )
    captured = {}

    def start_response(status, headers):
        captured["status"] = int(status.split()[0])

    chunks = b"".join(app(environ, start_response))
    return captured["status"], (json.loads(chunks) if chunks else None)


class AppTest(unittest.TestCase):
    def setUp(self):
        self.app = App()

    def test_health(self):
        self.assertEqual(call(self.app, "GET", "/health"), (200, {"status": "ok"}))

    def test_create_read_update_delete(self):
        status, note = call(self.app, "POST", "/api/notes", {"title": "  first ", "body": "text"})
        self.assertEqual(status, 201)
        self.assertEqual(note["title"], "first")
        path = f"/api/notes/{note['id']}"
        self.assertEqual(call(self.app, "GET", path), (200, note))
        status, updated = call(self.app, "PUT", path, {"body": "changed"})
        self.assertEqual((status, updated["body"], updated["title"]), (200, "changed", "first"))
        self.assertEqual(call(self.app, "GET", "/api/notes")[1]["notes"], [updated])
        self.assertEqual(call(self.app, "DELETE", path), (204, None))
        self.assertEqual(call(self.app, "GET", path)[0], 404)

    def test_invalid_input(self):
        status, body = call(self.app, "POST", "/api/notes", {"body": "no title"})
        self.assertEqual(status, 422)
        self.assertIn("title", body["detail"])
        self.assertEqual(call(self.app, "POST", "/api/notes", b"{nope")[0], 400)
        self.assertEqual(call(self.app, "POST", "/api/notes", b"x", content_type="text/plain")[0], 415)

    def test_unknown_routes_and_methods(self):
        self.assertEqual(call(self.app, "GET", "/missing")[0], 404)
        self.assertEqual(call(self.app, "PATCH", "/api/notes")[0], 405)


class Silent(WSGIRequestHandler):
    def log_message(self, *args):
        pass


class ServerTest(unittest.TestCase):
    """The same app behind a real HTTP server on a free port."""

    def setUp(self):
        self.server = make_server("127.0.0.1", 0, App(), server_class=WSGIServer, handler_class=Silent)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.base = f"http://127.0.0.1:{self.server.server_port}"

    def tearDown(self):
        self.server.shutdown()
        self.server.server_close()

    def test_over_http(self):
        request = urllib.request.Request(
            self.base + "/api/notes",
            data=json.dumps({"title": "over the wire"}).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=5) as response:
            self.assertEqual(response.status, 201)
            self.assertEqual(json.loads(response.read())["title"], "over the wire")
        with self.assertRaises(urllib.error.HTTPError) as caught:
            urllib.request.urlopen(self.base + "/api/notes/999", timeout=5)
        self.assertEqual(caught.exception.code, 404)


if __name__ == "__main__":
    unittest.main()
