"""Accounts: passwords hashed with scrypt (the standard library's hashlib, a random salt each)
and sessions as random tokens in an HttpOnly cookie, kept in the database."""

import base64
import hashlib
import hmac
import secrets
import time

SESSION_COOKIE = "sid"
SESSION_SECONDS = 7 * 24 * 3600
_N, _R, _P = 2**14, 8, 1


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    key = hashlib.scrypt(password.encode(), salt=salt, n=_N, r=_R, p=_P, dklen=32)
    return "scrypt$" + base64.b64encode(salt).decode() + "$" + base64.b64encode(key).decode()


def verify_password(password: str, stored: str) -> bool:
    try:
        scheme, salt, key = stored.split("$")
    except ValueError:
        return False
    if scheme != "scrypt":
        return False
    expected = base64.b64decode(key)
    actual = hashlib.scrypt(
        password.encode(), salt=base64.b64decode(salt), n=_N, r=_R, p=_P, dklen=len(expected)
    )
    return hmac.compare_digest(actual, expected)


def create_session(db, user_id: int) -> str:
    token = secrets.token_urlsafe(32)
    db.execute(
        "INSERT INTO sessions (token, user_id, expires_at) VALUES (?, ?, ?)",
        (token, user_id, time.time() + SESSION_SECONDS),
    )
    return token


def session_user(db, token: str | None) -> int | None:
    if not token:
        return None
    row = db.execute(
        "SELECT user_id FROM sessions WHERE token = ? AND expires_at > ?", (token, time.time())
    ).fetchone()
    return row["user_id"] if row else None


def end_session(db, token: str | None) -> None:
    if token:
        db.execute("DELETE FROM sessions WHERE token = ?", (token,))
