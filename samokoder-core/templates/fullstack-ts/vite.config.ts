// The front end's build (`npm run build` writes dist/, which the API serves in production) and
// the tests of both halves (`npm test`): server tests run in Node, front-end tests in jsdom
// (they say so in their first line).
import react from '@vitejs/plugin-react';
import { defineConfig } from 'vitest/config';

export default defineConfig({
  plugins: [react()],
  server: {
    // `npm run dev`: the API runs beside it (`npm start` on another port) and /api goes there.
    proxy: { '/api': `http://127.0.0.1:${process.env.API_PORT ?? '3001'}` },
  },
  test: {
    globals: true,
    environment: 'node',
    setupFiles: ['./test/setup.ts'],
  },
});
