"""In-memory storage for notes. Replace with a database when the project needs persistence."""

import threading


class ValidationError(ValueError):
    """Input that cannot be stored; the message says why."""


def _validate(data, partial):
    if not isinstance(data, dict):
        raise ValidationError("the body must be a JSON object")
    out = {}
    if "title" in data or not partial:
        title = data.get("title")
        if not isinstance(title, str) or not title.strip():
            raise ValidationError("title must be a non-empty string")
        if len(title) > 200:
            raise ValidationError("title must be at most 200 characters")
        out["title"] = title.strip()
    if "body" in data:
        if not isinstance(data["body"], str):
            raise ValidationError("body must be a string")
        out["body"] = data["body"]
    return out


class NoteStore:
    """Notes by id. Thread-safe: the server may handle requests on several threads."""

    def __init__(self):
        self._notes = {}
        self._next_id = 1
        self._lock = threading.Lock()

    def list(self):
        with self._lock:
            return list(self._notes.values())

    def get(self, note_id):
        with self._lock:
            return self._notes.get(note_id)

    def create(self, data):
        fields = _validate(data, partial=False)
        with self._lock:
            note = {"id": self._next_id, "title": fields["title"], "body": fields.get("body", "")}
            self._notes[note["id"]] = note
            self._next_id += 1
            return note

    def update(self, note_id, data):
        fields = _validate(data, partial=True)
        with self._lock:
            note = self._notes.get(note_id)
            if note is None:
                return None
            note = {**note, **fields}
            self._notes[note_id] = note
            return note

    def delete(self, note_id):
        with self._lock:
            return self._notes.pop(note_id, None) is not None
