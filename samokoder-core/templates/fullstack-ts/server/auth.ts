// Accounts: passwords hashed with scrypt (Node's own crypto, a random salt per password) and
// sessions as random tokens in an HttpOnly cookie, kept in the database.
import { randomBytes, scrypt as scryptCallback, timingSafeEqual } from 'node:crypto';
import { promisify } from 'node:util';
import type { NextFunction, Request, Response } from 'express';
import type { Db } from './db.ts';

const scrypt = promisify(scryptCallback) as (
  password: string,
  salt: Buffer,
  keylen: number,
) => Promise<Buffer>;

export const SESSION_COOKIE = 'sid';
const SESSION_DAYS = 7;

export async function hashPassword(password: string): Promise<string> {
  const salt = randomBytes(16);
  const key = await scrypt(password, salt, 32);
  return `scrypt$${salt.toString('base64')}$${key.toString('base64')}`;
}

export async function verifyPassword(password: string, stored: string): Promise<boolean> {
  const [scheme, salt, key] = stored.split('$');
  if (scheme !== 'scrypt' || !salt || !key) {
    return false;
  }
  const expected = Buffer.from(key, 'base64');
  const actual = await scrypt(password, Buffer.from(salt, 'base64'), expected.length);
  return timingSafeEqual(actual, expected);
}

export function createSession(db: Db, userId: number): { token: string; maxAgeMs: number } {
  const token = randomBytes(32).toString('base64url');
  const maxAgeMs = SESSION_DAYS * 24 * 60 * 60 * 1000;
  db.prepare('INSERT INTO sessions (token, user_id, expires_at) VALUES (?, ?, ?)').run(
    token,
    userId,
    Date.now() + maxAgeMs,
  );
  return { token, maxAgeMs };
}

export function endSession(db: Db, token: string | undefined): void {
  if (token) {
    db.prepare('DELETE FROM sessions WHERE token = ?').run(token);
  }
}

/** The value of cookie `name` in the request (no cookie-parsing dependency needed). */
export function cookie(req: Request, name: string): string | undefined {
  for (const part of (req.headers.cookie ?? '').split(';')) {
    const [key, ...value] = part.trim().split('=');
    if (key === name) {
      return decodeURIComponent(value.join('='));
    }
  }
  return undefined;
}

export interface Authed extends Request {
  userId: number;
}

/** Lets the request through only with a live session; sets `req.userId`. */
export function requireUser(db: Db) {
  return (req: Request, res: Response, next: NextFunction) => {
    const token = cookie(req, SESSION_COOKIE);
    const row = token
      ? (db
          .prepare('SELECT user_id FROM sessions WHERE token = ? AND expires_at > ?')
          .get(token, Date.now()) as { user_id: number } | undefined)
      : undefined;
    if (!row) {
      res.status(401).json({ error: 'not signed in' });
      return;
    }
    (req as Authed).userId = row.user_id;
    next();
  };
}
