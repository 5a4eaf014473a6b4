"""The WSGI application: routing, JSON bodies and errors."""

import json
import re

from .store import NoteStore, ValidationError

# Bodies larger than this are refused without being read.
MAX_BODY_BYTES = 1024 * 1024

STATUS_TEXT = {
    200: "200 OK",
    201: "201 Created",
    204: "204 No Content",
    400: "400 Bad Request",
    404: "404 Not Found",
    405: "405 Method Not Allowed",
    413: "413 Payload Too Large",
    415: "415 Unsupported Media Type",
    422: "422 Unprocessable Entity",
    500: "500 Internal Server Error",
}


class HttpError(Exception):
    def __init__(self, status, code, detail):
        super().__init__(detail)
        self.status = status
        self.code = code
        self.detail = detail


def _read_json(environ):
    if not environ.get("CONTENT_TYPE", "").startswith("application/json"):
        raise HttpError(415, "unsupported_media_type", "send a JSON body (content-type: application/json)")
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        raise HttpError(400, "invalid_length", "Content-Length is not a number") from None
    if length > MAX_BODY_BYTES:
        raise HttpError(413, "body_too_large", f"the body is larger than {MAX_BODY_BYTES} bytes")
    raw = environ["wsgi.input"].read(length) if length else b""
    try:
        return json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise HttpError(400, "invalid_json", "the body is not valid JSON") from None


def _note_id(match):
    return int(match.group("id"))


class App:
    """A WSGI callable. Each instance has its own store, so tests do not share state."""

    def __init__(self, store=None):
        self.store = store or NoteStore()
        self.routes = [
            ("GET", re.compile(r"^/health$"), self.health),
            ("GET", re.compile(r"^/api/notes$"), self.list_notes),
            ("POST", re.compile(r"^/api/notes$"), self.create_note),
            ("GET", re.compile(r"^/api/notes/(?P<id>\d+)$"), self.get_note),
            ("PUT", re.compile(r"^/api/notes/(?P<id>\d+)$"), self.update_note),
            ("DELETE", re.compile(r"^/api/notes/(?P<id>\d+)$"), self.delete_note),
        ]

    def health(self, environ, match):
        return 200, {"status": "ok"}

    def list_notes(self, environ, match):
        return 200, {"notes": self.store.list()}

    def create_note(self, environ, match):
        return 201, self.store.create(_read_json(environ))

    def get_note(self, environ, match):
        note = self.store.get(_note_id(match))
        if note is None:
            raise HttpError(404, "not_found", f"no note {match.group('id')}")
        return 200, note

    def update_note(self, environ, match):
        note = self.store.update(_note_id(match), _read_json(environ))
        if note is None:
            raise HttpError(404, "not_found", f"no note {match.group('id')}")
        return 200, note

    def delete_note(self, environ, match):
        if not self.store.delete(_note_id(match)):
            raise HttpError(404, "not_found", f"no note {match.group('id')}")
        return 204, None

    def __call__(self, environ, start_response):
        method = environ["REQUEST_METHOD"]
        path = environ.get("PATH_INFO", "/").rstrip("/") or "/"
        try:
            status, body = self._dispatch(method, path, environ)
        except HttpError as err:
            status, body = err.status, {"error": err.code, "detail": err.detail}
        except ValidationError as err:
            status, body = 422, {"error": "validation_failed", "detail": str(err)}
        except Exception:  # noqa: BLE001 - the client gets a 500, the log gets the trace
            import traceback

            traceback.print_exc()
            status, body = 500, {"error": "internal", "detail": "internal server error"}
        if body is None:
            start_response(STATUS_TEXT[status], [])
            return [b""]
        payload = json.dumps(body).encode("utf-8")
        start_response(
            STATUS_TEXT[status],
            [("Content-Type", "application/json; charset=utf-8"), ("Content-Length", str(len(payload)))],
        )
        return [payload]

    def _dispatch(self, method, path, environ):
        path_matched = False
        for route_method, pattern, handler in self.routes:
            match = pattern.match(path)
            if not match:
                continue
            path_matched = True
            if route_method == method:
                return handler(environ, match)
        if path_matched:
            raise HttpError(405, "method_not_allowed", f"{method} is not allowed on {path}")
        raise HttpError(404, "not_found", f"no route {path}")
