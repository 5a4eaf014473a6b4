"""The API under /api."""

import os
import re

from fastapi import Cookie, Depends, FastAPI, HTTPException, Response
from pydantic import BaseModel

from . import auth
from .db import open_db

EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


class Credentials(BaseModel):
    email: str
    password: str


class NewTodo(BaseModel):
    title: str


class TodoUpdate(BaseModel):
    done: bool


def create_app(db_path: str | None = None) -> FastAPI:
    """The app over the database at `db_path` (DATABASE_PATH, default data.db)."""
    db = open_db(db_path or os.environ.get("DATABASE_PATH", "data.db"))
    app = FastAPI(title="{{project_name}}")

    def current_user(sid: str | None = Cookie(default=None)) -> int:
        user = auth.session_user(db, sid)
        if user is None:
            raise HTTPException(status_code=401, detail="not signed in")
        return user

    def sign_in(response: Response, user_id: int, email: str) -> dict:
        token = auth.create_session(db, user_id)
        response.set_cookie(
            auth.SESSION_COOKIE, token, httponly=True, samesite="lax", max_age=auth.SESSION_SECONDS
        )
        return {"id": user_id, "email": email}

    def checked(given: Credentials) -> tuple[str, str]:
        email = given.email.strip().lower()
        if not EMAIL.match(email):
            raise HTTPException(status_code=400, detail="a valid e-mail address is required")
        if len(given.password) < 8:
            raise HTTPException(status_code=400, detail="the password needs at least 8 characters")
        return email, given.password

    @app.get("/api/health")
    def health() -> dict:
        return {"status": "ok"}

    @app.post("/api/register", status_code=201)
    def register(given: Credentials, response: Response) -> dict:
        email, password = checked(given)
        if db.execute("SELECT 1 FROM users WHERE email = ?", (email,)).fetchone():
            raise HTTPException(status_code=409, detail="an account with this e-mail exists")
        cursor = db.execute(
            "INSERT INTO users (email, password_hash) VALUES (?, ?)",
            (email, auth.hash_password(password)),
        )
        return sign_in(response, cursor.lastrowid, email)

    @app.post("/api/login")
    def login(given: Credentials, response: Response) -> dict:
        email = given.email.strip().lower()
        row = db.execute("SELECT id, password_hash FROM users WHERE email = ?", (email,)).fetchone()
        if not row or not auth.verify_password(given.password, row["password_hash"]):
            raise HTTPException(status_code=401, detail="wrong e-mail or password")
        return sign_in(response, row["id"], email)

    @app.post("/api/logout", status_code=204)
    def logout(response: Response, sid: str | None = Cookie(default=None)) -> Response:
        auth.end_session(db, sid)
        response.delete_cookie(auth.SESSION_COOKIE)
        response.status_code = 204
        return response

    @app.get("/api/me")
    def me(user: int = Depends(current_user)) -> dict:
        row = db.execute("SELECT id, email FROM users WHERE id = ?", (user,)).fetchone()
        return dict(row)

    @app.get("/api/todos")
    def todos(user: int = Depends(current_user)) -> list[dict]:
        rows = db.execute(
            "SELECT id, title, done FROM todos WHERE user_id = ? ORDER BY id", (user,)
        ).fetchall()
        return [{"id": r["id"], "title": r["title"], "done": bool(r["done"])} for r in rows]

    @app.post("/api/todos", status_code=201)
    def add_todo(todo: NewTodo, user: int = Depends(current_user)) -> dict:
        title = todo.title.strip()
        if not 1 <= len(title) <= 200:
            raise HTTPException(status_code=400, detail="a title of 1 to 200 characters is required")
        cursor = db.execute("INSERT INTO todos (user_id, title) VALUES (?, ?)", (user, title))
        return {"id": cursor.lastrowid, "title": title, "done": False}

    @app.patch("/api/todos/{todo_id}")
    def update_todo(todo_id: int, update: TodoUpdate, user: int = Depends(current_user)) -> dict:
        db.execute(
            "UPDATE todos SET done = ? WHERE id = ? AND user_id = ?",
            (int(update.done), todo_id, user),
        )
        row = db.execute(
            "SELECT id, title, done FROM todos WHERE id = ? AND user_id = ?", (todo_id, user)
        ).fetchone()
        if not row:
            raise HTTPException(status_code=404, detail="no such todo")
        return {"id": row["id"], "title": row["title"], "done": bool(row["done"])}

    @app.delete("/api/todos/{todo_id}", status_code=204)
    def delete_todo(todo_id: int, user: int = Depends(current_user)) -> Response:
        cursor = db.execute("DELETE FROM todos WHERE id = ? AND user_id = ?", (todo_id, user))
        if not cursor.rowcount:
            raise HTTPException(status_code=404, detail="no such todo")
        return Response(status_code=204)

    return app
