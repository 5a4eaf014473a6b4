from fastapi.testclient import TestClient

from app.main import create_app


def client() -> TestClient:
    return TestClient(create_app(":memory:"))


def signed_up(c: TestClient, email: str = "a@example.com") -> TestClient:
    res = c.post("/api/register", json={"email": email, "password": "long-enough-1"})
    assert res.status_code == 201, res.text
    return c


def test_health():
    res = client().get("/api/health")
    assert res.status_code == 200
    assert res.json() == {"status": "ok"}


def test_register_logout_login_and_refusals():
    c = signed_up(client())
    assert c.get("/api/me").json()["email"] == "a@example.com"
    assert c.post("/api/logout").status_code == 204
    assert c.get("/api/me").status_code == 401
    assert c.post("/api/register", json={"email": "A@example.com", "password": "long-enough-2"}).status_code == 409
    assert c.post("/api/login", json={"email": "a@example.com", "password": "wrong-one"}).status_code == 401
    res = c.post("/api/login", json={"email": "a@example.com", "password": "long-enough-1"})
    assert res.status_code == 200
    assert "httponly" in res.headers["set-cookie"].lower()


def test_short_passwords_and_bad_addresses_are_refused():
    c = client()
    assert c.post("/api/register", json={"email": "b@example.com", "password": "short"}).status_code == 400
    assert c.post("/api/register", json={"email": "nope", "password": "long-enough-1"}).status_code == 400


def test_todos_belong_to_their_owner():
    app = create_app(":memory:")
    alice = signed_up(TestClient(app), "alice@example.com")
    bob = signed_up(TestClient(app), "bob@example.com")
    created = alice.post("/api/todos", json={"title": "Buy milk"})
    assert created.status_code == 201
    todo_id = created.json()["id"]
    assert alice.patch(f"/api/todos/{todo_id}", json={"done": True}).json()["done"] is True
    assert alice.get("/api/todos").json() == [{"id": todo_id, "title": "Buy milk", "done": True}]
    assert bob.get("/api/todos").json() == []
    assert bob.patch(f"/api/todos/{todo_id}", json={"done": False}).status_code == 404
    assert bob.delete(f"/api/todos/{todo_id}").status_code == 404
    assert alice.delete(f"/api/todos/{todo_id}").status_code == 204
