'use strict';

const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const http = require('node:http');
const { createApp } = require('../src/app');

let server;
let base;

before(async () => {
  server = http.createServer(createApp());
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${server.address().port}`;
});

after(() => new Promise((resolve) => server.close(resolve)));

async function call(method, path, body) {
  const init = { method, headers: {} };
  if (body !== undefined) {
    init.headers['content-type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  const res = await fetch(base + path, init);
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : null };
}

test('health check answers ok', async () => {
  const res = await call('GET', '/health');
  assert.equal(res.status, 200);
  assert.deepEqual(res.body, { status: 'ok' });
});

test('items can be created, read, updated and deleted', async () => {
  const created = await call('POST', '/api/items', { name: '  write tests ' });
  assert.equal(created.status, 201);
  assert.equal(created.body.name, 'write tests');
  assert.equal(created.body.done, false);

  const { id } = created.body;
  assert.deepEqual((await call('GET', `/api/items/${id}`)).body, created.body);

  const updated = await call('PUT', `/api/items/${id}`, { done: true });
  assert.equal(updated.status, 200);
  assert.equal(updated.body.done, true);

  const list = await call('GET', '/api/items');
  assert.ok(list.body.items.some((item) => item.id === id));

  assert.equal((await call('DELETE', `/api/items/${id}`)).status, 204);
  assert.equal((await call('GET', `/api/items/${id}`)).status, 404);
});

test('invalid input is refused with a reason', async () => {
  const missing = await call('POST', '/api/items', {});
  assert.equal(missing.status, 422);
  assert.match(missing.body.detail, /name/);

  const wrongType = await call('PUT', '/api/items/1', { done: 'yes' });
  assert.ok([404, 422].includes(wrongType.status));

  const res = await fetch(`${base}/api/items`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: '{not json',
  });
  assert.equal(res.status, 400);
});

test('unknown routes and methods', async () => {
  assert.equal((await call('GET', '/nope')).status, 404);
  assert.equal((await call('PATCH', '/api/items')).status, 405);
});
