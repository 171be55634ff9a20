// Python sessions in microVMs: each session its own QEMU VM, restored from a warm snapshot.
// Uses KVM (or WHPX/HVF) when it really works, else software emulation (TCG).
// Run after `npm run setup`: npx tsx examples/python-vm.ts
import { SessionPool } from 'sandpool';
import { VMBackend } from 'sandpool/backends/vm';

const backend = new VMBackend();
console.log('accelerator:', await backend.accelerator());
await using pool = new SessionPool({
  backend,
  containerType: 'PythonLTS',
  readySessionInstances: 1,
  limits: { memoryMb: 512, executionTimeoutSeconds: 120 },
});
const t0 = Date.now();
await pool.start(); // first run builds the warm snapshot (about a minute under TCG), then restores
console.log(`ready after ${((Date.now() - t0) / 1000).toFixed(1)} s`);

const session = await pool.acquire('vm-user');
const r = await session.execute({ code: 'import platform, numpy as np\nprint(platform.release())\nnp.arange(10).sum()' });
console.log(r.status, r.result, r.stdout.trim()); // Succeeded 45 <guest kernel>
