// Mounting sandpool's handler in an existing express app (npm install express).
// The handler reads the raw request body itself, so mount it before any body-parsing middleware
// (or on a path those middlewares do not cover).
import express from 'express';
import { SessionPool } from 'sandpool';
import { QuickJSBackend } from 'sandpool/backends/quickjs';
import { createServer } from 'sandpool/server';

const sessions = createServer({
  pools: [new SessionPool({ name: 'javascript', backend: new QuickJSBackend(), containerType: 'NodeLTS' })],
  auth: { adminKey: process.env.SANDPOOL_ADMIN_KEY },
});

const app = express();
app.get('/', (_req, res) => res.send('my app'));
// Under /sessions the pool endpoint is http://HOST:3000/sessions/pools/javascript (express strips the mount path).
app.use('/sessions', sessions.handler);
const http = app.listen(3000);

process.once('SIGTERM', async () => {
  http.close();
  await sessions.close(); // drains the pools
});
