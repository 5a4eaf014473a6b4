'use strict';

// The HTTP layer: routing, JSON bodies and errors. No dependencies, only node:http.

const { ItemStore, ValidationError } = require('./store');

// Bodies larger than this are refused before they are read in full.
const MAX_BODY_BYTES = 1024 * 1024;

class HttpError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

function sendJson(res, status, body) {
  const payload = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(payload),
  });
  res.end(payload);
}

function readJson(req) {
  return new Promise((resolve, reject) => {
    const type = req.headers['content-type'] || '';
    if (!type.startsWith('application/json')) {
      reject(new HttpError(415, 'unsupported_media_type', 'send a JSON body (content-type: application/json)'));
      return;
    }
    const chunks = [];
    let size = 0;
    req.on('data', (chunk) => {
      size += chunk.length;
      if (size > MAX_BODY_BYTES) {
        reject(new HttpError(413, 'body_too_large', `the body is larger than ${MAX_BODY_BYTES} bytes`));
        req.destroy();
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => {
      try {
        resolve(JSON.parse(Buffer.concat(chunks).toString('utf8')));
      } catch {
        reject(new HttpError(400, 'invalid_json', 'the body is not valid JSON'));
      }
    });
    req.on('error', reject);
  });
}

// Routes: [method, pattern, handler]. A pattern segment starting with ':' captures.
function routes(store) {
  return [
    ['GET', '/health', () => [200, { status: 'ok' }]],
    ['GET', '/api/items', () => [200, { items: store.list() }]],
    ['POST', '/api/items', async (req) => [201, store.create(await readJson(req))]],
    ['GET', '/api/items/:id', (req, params) => {
      const item = store.get(params.id);
      if (!item) throw new HttpError(404, 'not_found', `no item ${params.id}`);
      return [200, item];
    }],
    ['PUT', '/api/items/:id', async (req, params) => {
      const item = store.update(params.id, await readJson(req));
      if (!item) throw new HttpError(404, 'not_found', `no item ${params.id}`);
      return [200, item];
    }],
    ['DELETE', '/api/items/:id', (req, params) => {
      if (!store.remove(params.id)) throw new HttpError(404, 'not_found', `no item ${params.id}`);
      return [204, null];
    }],
  ];
}

function match(pattern, path) {
  const want = pattern.split('/');
  const got = path.split('/');
  if (want.length !== got.length) return null;
  const params = {};
  for (let i = 0; i < want.length; i += 1) {
    if (want[i].startsWith(':')) params[want[i].slice(1)] = decodeURIComponent(got[i]);
    else if (want[i] !== got[i]) return null;
  }
  return params;
}

// Returns a request listener for http.createServer.
function createApp(store = new ItemStore()) {
  const table = routes(store);
  return async function handle(req, res) {
    const path = new URL(req.url, 'http://localhost').pathname.replace(/\/+$/, '') || '/';
    try {
      let allowed = false;
      for (const [method, pattern, handler] of table) {
        const params = match(pattern, path);
        if (!params) continue;
        allowed = true;
        if (method !== req.method) continue;
        const [status, body] = await handler(req, params);
        if (status === 204) {
          res.writeHead(204);
          res.end();
        } else {
          sendJson(res, status, body);
        }
        return;
      }
      if (allowed) throw new HttpError(405, 'method_not_allowed', `${req.method} is not allowed on ${path}`);
      throw new HttpError(404, 'not_found', `no route ${path}`);
    } catch (err) {
      if (err instanceof HttpError) {
        sendJson(res, err.status, { error: err.code, detail: err.message });
      } else if (err instanceof ValidationError) {
        sendJson(res, 422, { error: 'validation_failed', detail: err.message });
      } else {
        console.error(err);
        sendJson(res, 500, { error: 'internal', detail: 'internal server error' });
      }
    }
  };
}

module.exports = { createApp, HttpError };
