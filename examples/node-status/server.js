'use strict';
// A tiny status page: uptime (formatted with the `ms` package) and a health endpoint.
const http = require('http');
const ms = require('ms');

const port = Number(process.env.PORT || 8080);
const title = process.env.SITE_TITLE || 'Status';
const started = Date.now();
const escape = (s) => String(s).replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' }[c]));

const server = http.createServer((req, res) => {
  if (req.url === '/healthz') {
    res.writeHead(200, { 'Content-Type': 'text/plain', 'Cache-Control': 'no-store' });
    return res.end('ok\n');
  }
  if (req.url === '/' && (req.method === 'GET' || req.method === 'HEAD')) {
    res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8' });
    return res.end(`<!doctype html><meta charset="utf-8"><title>${escape(title)}</title>` +
      `<h1>${escape(title)}</h1><p>Up for ${escape(ms(Date.now() - started, { long: true }))}.</p>`);
  }
  res.writeHead(404, { 'Content-Type': 'text/plain' });
  res.end('not found\n');
});

server.listen(port, '0.0.0.0', () => console.log(`listening on ${port}`));
process.on('SIGTERM', () => server.close(() => process.exit(0)));
