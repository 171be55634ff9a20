// Mounting sandpool's handler in fastify (npm install fastify). Fastify must not consume the body:
// the handler streams it (multipart uploads go straight into the session).
import Fastify from 'fastify';
import { SessionPool } from 'sandpool';
import { QuickJSBackend } from 'sandpool/backends/quickjs';
import { createServer } from 'sandpool/server';

const sessions = createServer({
  pools: [new SessionPool({ name: 'javascript', backend: new QuickJSBackend(), containerType: 'NodeLTS' })],
  auth: { adminKey: process.env.SANDPOOL_ADMIN_KEY },
});

const app = Fastify();
await app.register(async (scope) => {
  // Leave every body unread for the sandpool handler.
  scope.removeAllContentTypeParsers();
  scope.addContentTypeParser('*', (_request, _payload, done) => done(null));
  scope.all('/*', (request, reply) => {
    reply.hijack();
    sessions.handler(request.raw, reply.raw);
  });
});
app.addHook('onClose', async () => sessions.close());
await app.listen({ port: 3000 });
