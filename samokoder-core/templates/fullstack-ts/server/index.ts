// Entry point: `npm start` (after `npm run build`). Listens on HOST:PORT (defaults
// 127.0.0.1:3000), keeps its data in DATABASE_PATH (default data.db) and serves the built
// front end from dist/.
import { fileURLToPath } from 'node:url';
import { createApp } from './app.ts';
import { openDb } from './db.ts';

const port = Number.parseInt(process.env.PORT ?? '3000', 10);
const host = process.env.HOST ?? '127.0.0.1';
const db = openDb(process.env.DATABASE_PATH ?? 'data.db');
const dist = fileURLToPath(new URL('../dist', import.meta.url));

const server = createApp(db, dist).listen(port, host, () => {
  console.log(`{{project_name}} listening on http://${host}:${port}`);
});

function shutdown(signal: string) {
  console.log(`${signal} received, closing`);
  server.close(() => {
    db.close();
    process.exit(0);
  });
}
process.on('SIGTERM', () => shutdown('SIGTERM'));
process.on('SIGINT', () => shutdown('SIGINT'));
