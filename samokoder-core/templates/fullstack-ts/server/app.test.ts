import request from 'supertest';
import { beforeEach, expect, test } from 'vitest';
import { createApp } from './app.ts';
import { openDb } from './db.ts';

let app: ReturnType<typeof createApp>;

beforeEach(() => {
  app = createApp(openDb(':memory:'));
});

/** Registers and returns an agent that keeps the session cookie. */
async function signedUp(email = 'a@example.com') {
  const agent = request.agent(app);
  const res = await agent.post('/api/register').send({ email, password: 'long-enough-1' });
  expect(res.status).toBe(201);
  return agent;
}

test('health', async () => {
  const res = await request(app).get('/api/health');
  expect(res.status).toBe(200);
  expect(res.body).toEqual({ status: 'ok' });
});

test('register, sign out, sign in again; wrong passwords and duplicates are refused', async () => {
  const agent = await signedUp();
  expect((await agent.get('/api/me')).body.email).toBe('a@example.com');
  expect((await agent.post('/api/logout')).status).toBe(204);
  expect((await agent.get('/api/me')).status).toBe(401);

  const again = await request(app)
    .post('/api/register')
    .send({ email: 'A@example.com', password: 'long-enough-2' });
  expect(again.status).toBe(409);
  const wrong = await request(app)
    .post('/api/login')
    .send({ email: 'a@example.com', password: 'not-the-one' });
  expect(wrong.status).toBe(401);
  const right = await request(app)
    .post('/api/login')
    .send({ email: 'a@example.com', password: 'long-enough-1' });
  expect(right.status).toBe(200);
  expect(right.headers['set-cookie'][0]).toMatch(/sid=.*HttpOnly/);
});

test('short passwords and bad e-mail addresses are refused', async () => {
  const short = await request(app).post('/api/register').send({ email: 'b@example.com', password: 'short' });
  expect(short.status).toBe(400);
  const bad = await request(app).post('/api/register').send({ email: 'nope', password: 'long-enough-1' });
  expect(bad.status).toBe(400);
});

test('todos belong to their owner', async () => {
  const alice = await signedUp('alice@example.com');
  const bob = await signedUp('bob@example.com');
  const created = await alice.post('/api/todos').send({ title: 'Buy milk' });
  expect(created.status).toBe(201);
  const id = created.body.id;
  expect((await alice.patch(`/api/todos/${id}`).send({ done: true })).body.done).toBe(true);
  expect((await alice.get('/api/todos')).body).toEqual([{ id, title: 'Buy milk', done: true }]);
  expect((await bob.get('/api/todos')).body).toEqual([]);
  expect((await bob.patch(`/api/todos/${id}`).send({ done: false })).status).toBe(404);
  expect((await bob.delete(`/api/todos/${id}`)).status).toBe(404);
  expect((await alice.delete(`/api/todos/${id}`)).status).toBe(204);
  expect((await request(app).get('/api/todos')).status).toBe(401);
});
