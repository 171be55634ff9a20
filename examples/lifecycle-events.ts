// Every lifecycle step is an event: print them while a short-cooldown pool allocates, runs code,
// times a session out and refills. Run: npx tsx examples/lifecycle-events.ts
import { SessionPool } from 'sandpool';
import { QuickJSBackend } from 'sandpool/backends/quickjs';

const pool = new SessionPool({
  name: 'events-demo',
  backend: new QuickJSBackend(),
  containerType: 'NodeLTS',
  readySessionInstances: 2,
  cooldownPeriodInSeconds: 1, // destroy sessions idle for one second
  limits: { executionTimeoutSeconds: 2 },
});

const t0 = Date.now();
const at = () => `+${String(Date.now() - t0).padStart(4)} ms`;
pool
  .on('sessionPending', (e) => console.log(at(), 'pending   ', e.sessionId, e.onDemand ? '(on demand)' : '(refill)'))
  .on('sessionReady', (e) => console.log(at(), 'ready     ', e.sessionId, `created in ${e.createDurationMs.toFixed(2)} ms`))
  .on('sessionAllocated', (e) =>
    console.log(
      at(),
      'allocated ',
      e.sessionId,
      `to ${e.identifier} in ${e.allocationLatencyMs.toFixed(3)} ms`,
      e.coldMiss ? '(cold)' : '(warm)',
    ),
  )
  .on('executionStarted', (e) => console.log(at(), 'exec start', e.sessionId, e.language))
  .on('executionFinished', (e) =>
    console.log(at(), 'exec done ', e.sessionId, e.status, `${e.durationMs} ms`, e.timedOut ? '(timed out)' : ''),
  )
  .on('sessionDestroyed', (e) => console.log(at(), 'destroyed ', e.sessionId, `reason=${e.reason}`))
  .on('poolExhausted', (e) => console.log(at(), 'exhausted ', e.maxConcurrentSessions))
  .on('error', (e) => console.log(at(), 'error     ', e.operation, e.error.message));

await pool.start();
const session = await pool.acquire('demo-user');
await session.execute({ code: '[1, 2, 3].map((n) => n * 2)' });
const slow = await session.execute({ code: 'while (true) {}', timeoutInSeconds: 0.2 });
console.log(at(), 'timeout result:', slow.status, slow.error?.code, `session ${slow.sessionState}`);
await new Promise((resolve) => setTimeout(resolve, 1_500)); // past the cooldown
console.log(at(), 'stats:', JSON.stringify({ ...pool.stats(), timings: undefined }));
await pool.close();
console.log(at(), 'closed; the process exits by itself');
