'use strict';

// Entry point: `npm start`. Listens on HOST:PORT (defaults 127.0.0.1:3000).

const http = require('node:http');
const { createApp } = require('./app');

const port = Number.parseInt(process.env.PORT || '3000', 10);
const host = process.env.HOST || '127.0.0.1';

const server = http.createServer(createApp());
server.listen(port, host, () => {
  console.log(`{{project_name}} listening on http://${host}:${server.address().port}`);
});

function shutdown(signal) {
  console.log(`${signal} received, closing`);
  server.close(() => process.exit(0));
}
process.on('SIGTERM', () => shutdown('SIGTERM'));
process.on('SIGINT', () => shutdown('SIGINT'));
