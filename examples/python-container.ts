// Python code-interpreter sessions in containers (Podman or Docker), with files and a figure.
// Run after `npm run setup`: npx tsx examples/python-container.ts
import { writeFileSync } from 'node:fs';

import { SessionPool } from 'sandpool';
import { ContainerBackend } from 'sandpool/backends/container';

await using pool = new SessionPool({
  backend: new ContainerBackend({ onLog: (e) => console.log(`[backend] ${e.message}`) }),
  containerType: 'PythonLTS',
  readySessionInstances: 2,
  limits: { memoryMb: 512, executionTimeoutSeconds: 60 },
});
await pool.start();

const session = await pool.acquire(SessionPool.generateIdentifier());
await session.uploadFile('sales.csv', 'month,amount\nJan,10\nFeb,14\nMar,9\n');
const table = await session.execute({ code: "import pandas as pd\ndf = pd.read_csv('sales.csv')\ndf.amount.sum()" });
console.log('sum:', table.result); // 33

const chart = await session.execute({
  code: 'import matplotlib.pyplot as plt\nfig, ax = plt.subplots()\nax.bar(df.month, df.amount)\nfig',
});
const image = chart.result as { type: string; base64_data: string };
writeFileSync('sales.png', Buffer.from(image.base64_data, 'base64'));
console.log('figure:', image.type, '→ sales.png');

const failed = await session.execute({ code: '1/0' });
console.log(failed.status, failed.stderr.trim().split('\n').at(-1)); // Failed ZeroDivisionError: division by zero
console.log(
  'files:',
  (await session.listFiles()).map((f) => `${f.name} ${f.sizeInBytes} B`),
);
