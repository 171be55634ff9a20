// Quick start: a pool of warm QuickJS sessions, get-or-create by identifier, stateful executions.
// Run: npx tsx examples/quickstart.ts
import { SessionPool } from 'sandpool';
import { QuickJSBackend } from 'sandpool/backends/quickjs';

await using pool = new SessionPool({
  backend: new QuickJSBackend(),
  containerType: 'NodeLTS',
  readySessionInstances: 5,
  cooldownPeriodInSeconds: 300,
});
await pool.start(); // five sessions are Ready

const session = await pool.acquire('user-42'); // takes a Ready session at once
await session.execute({ code: 'var x = 41' });
const { status, result, stdout } = await session.execute({ code: 'console.log("hi"); x + 1' });
console.log(status, result, JSON.stringify(stdout)); // Succeeded 42 "hi\n"

// Later calls with the same identifier reach the same session and its state.
const again = await pool.acquire('user-42');
console.log('same session:', again === session, (await again.execute({ code: 'x' })).result);

// Errors in the code are results, not exceptions (Azure semantics).
const failed = await session.execute({ code: 'null.boom' });
console.log(failed.status, failed.stderr.split('\n')[0]);

console.log(pool.stats());
