// The API under /api, and in production the built front end (dist/) for everything else.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import express, { type Response } from 'express';
import {
  type Authed,
  cookie,
  createSession,
  endSession,
  hashPassword,
  requireUser,
  SESSION_COOKIE,
  verifyPassword,
} from './auth.ts';
import type { Db } from './db.ts';

interface Credentials {
  email?: unknown;
  password?: unknown;
}

function credentials(body: Credentials): { email: string; password: string } | string {
  const email = typeof body?.email === 'string' ? body.email.trim().toLowerCase() : '';
  const password = typeof body?.password === 'string' ? body.password : '';
  if (!/^[^@\s]+@[^@\s]+\.[^@\s]+$/.test(email)) {
    return 'a valid e-mail address is required';
  }
  if (password.length < 8) {
    return 'the password needs at least 8 characters';
  }
  return { email, password };
}

function signIn(db: Db, res: Response, user: { id: number; email: string }, status: number) {
  const { token, maxAgeMs } = createSession(db, user.id);
  res.cookie(SESSION_COOKIE, token, {
    httpOnly: true,
    sameSite: 'lax',
    secure: process.env.NODE_ENV === 'production' && process.env.COOKIE_SECURE === '1',
    maxAge: maxAgeMs,
    path: '/',
  });
  res.status(status).json({ id: user.id, email: user.email });
}

interface TodoRow {
  id: number;
  title: string;
  done: number;
}

const todo = (row: TodoRow) => ({ id: row.id, title: row.title, done: row.done === 1 });

/** The app over `db`; `staticDir` (the built front end) is served when it exists. */
export function createApp(db: Db, staticDir?: string) {
  const app = express();
  app.disable('x-powered-by');
  app.use(express.json({ limit: '100kb' }));
  const authed = requireUser(db);

  app.get('/api/health', (_req, res) => {
    res.json({ status: 'ok' });
  });

  app.post('/api/register', async (req, res) => {
    const given = credentials(req.body);
    if (typeof given === 'string') {
      res.status(400).json({ error: given });
      return;
    }
    if (db.prepare('SELECT 1 FROM users WHERE email = ?').get(given.email)) {
      res.status(409).json({ error: 'an account with this e-mail exists' });
      return;
    }
    const hash = await hashPassword(given.password);
    const result = db
      .prepare('INSERT INTO users (email, password_hash) VALUES (?, ?)')
      .run(given.email, hash);
    signIn(db, res, { id: Number(result.lastInsertRowid), email: given.email }, 201);
  });

  app.post('/api/login', async (req, res) => {
    const given = credentials(req.body);
    const row =
      typeof given === 'string'
        ? undefined
        : (db.prepare('SELECT id, email, password_hash FROM users WHERE email = ?').get(
            given.email,
          ) as { id: number; email: string; password_hash: string } | undefined);
    if (typeof given === 'string' || !row || !(await verifyPassword(given.password, row.password_hash))) {
      res.status(401).json({ error: 'wrong e-mail or password' });
      return;
    }
    signIn(db, res, row, 200);
  });

  app.post('/api/logout', (req, res) => {
    endSession(db, cookie(req, SESSION_COOKIE));
    res.clearCookie(SESSION_COOKIE, { path: '/' });
    res.status(204).end();
  });

  app.get('/api/me', authed, (req, res) => {
    const user = db.prepare('SELECT id, email FROM users WHERE id = ?').get((req as Authed).userId);
    res.json(user);
  });

  app.get('/api/todos', authed, (req, res) => {
    const rows = db
      .prepare('SELECT id, title, done FROM todos WHERE user_id = ? ORDER BY id')
      .all((req as Authed).userId) as TodoRow[];
    res.json(rows.map(todo));
  });

  app.post('/api/todos', authed, (req, res) => {
    const title = typeof req.body?.title === 'string' ? req.body.title.trim() : '';
    if (!title || title.length > 200) {
      res.status(400).json({ error: 'a title of 1 to 200 characters is required' });
      return;
    }
    const result = db
      .prepare('INSERT INTO todos (user_id, title) VALUES (?, ?)')
      .run((req as Authed).userId, title);
    res.status(201).json({ id: Number(result.lastInsertRowid), title, done: false });
  });

  app.patch('/api/todos/:id', authed, (req, res) => {
    const userId = (req as Authed).userId;
    if (typeof req.body?.done !== 'boolean') {
      res.status(400).json({ error: '`done` must be true or false' });
      return;
    }
    db.prepare('UPDATE todos SET done = ? WHERE id = ? AND user_id = ?').run(
      req.body.done ? 1 : 0,
      Number(req.params.id),
      userId,
    );
    const row = db
      .prepare('SELECT id, title, done FROM todos WHERE id = ? AND user_id = ?')
      .get(Number(req.params.id), userId) as TodoRow | undefined;
    if (!row) {
      res.status(404).json({ error: 'no such todo' });
      return;
    }
    res.json(todo(row));
  });

  app.delete('/api/todos/:id', authed, (req, res) => {
    const result = db
      .prepare('DELETE FROM todos WHERE id = ? AND user_id = ?')
      .run(Number(req.params.id), (req as Authed).userId);
    res.status(result.changes ? 204 : 404).end();
  });

  app.use('/api', (_req, res) => {
    res.status(404).json({ error: 'no such route' });
  });

  if (staticDir && existsSync(staticDir)) {
    app.use(express.static(staticDir));
    // The front end routes in the browser: every other path gets its page.
    app.get('/{*path}', (_req, res) => {
      res.sendFile(join(staticDir, 'index.html'));
    });
  }
  return app;
}
