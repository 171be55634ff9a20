// The app inside each custom-container session: a tiny per-session key/value store over HTTP.
import { createServer } from 'node:http';

const store = new Map();
createServer((req, res) => {
  const url = new URL(req.url, 'http://session');
  if (url.pathname === '/healthz') return res.end('ok');
  const key = url.pathname.slice(1);
  if (req.method === 'PUT') {
    let body = '';
    req.on('data', (chunk) => (body += chunk));
    req.on('end', () => {
      store.set(key, body);
      res.end(`stored ${key} (${process.env.GREETING ?? 'hello'})`);
    });
    return;
  }
  res.end(store.get(key) ?? '(none)');
}).listen(8080, '127.0.0.1');
