/** `sandpool pool create|list|get|update|delete`: pool management over the HTTP API. */

import { readFile } from 'node:fs/promises';

import { CLIENT_OPTIONS, UsageError, numberOption, parse, stringOption, type OptionSpec } from '../args.js';
import { callJson, clientConfig } from '../http-client.js';
import { print, table } from '../output.js';

export const POOL_HELP = `Usage: sandpool pool <create|list|get|update|delete> [NAME] [options]

Manage session pools through the server's /pools API.

  create NAME   define a pool (PUT /pools/NAME)
  list          list pools with live ready/allocated/pending counts
  get NAME      show one pool
  update NAME   change settings (PATCH /pools/NAME)
  delete NAME   delete a pool and its sessions

Options (create, update):
  --backend NAME            quickjs, isolated-vm, container or vm
  --container-type TYPE     PythonLTS, NodeLTS, Shell or CustomContainer
  --ready N                 readySessionInstances
  --max N                   maxConcurrentSessions
  --cooldown SECONDS        cooldownPeriodInSeconds
  --properties FILE         Microsoft.App/sessionPools properties as JSON (merged under the flags)
Common:
  --endpoint URL   server (default $SANDPOOL_ENDPOINT or http://127.0.0.1:8080)
  --token TOKEN    bearer credential (default $SANDPOOL_TOKEN or $SANDPOOL_ADMIN_KEY)
  --json           print the server's JSON
  -h, --help       show this help`;

const OPTIONS: OptionSpec = {
  ...CLIENT_OPTIONS,
  backend: { type: 'string' },
  'container-type': { type: 'string' },
  ready: { type: 'string' },
  max: { type: 'string' },
  cooldown: { type: 'string' },
  properties: { type: 'string' },
};

interface PoolResource {
  name: string;
  backend: string;
  properties: {
    containerType: string;
    poolManagementEndpoint: string;
    provisioningState: string;
    status: { readySessionCount: number; allocatedSessionCount: number; pendingSessionCount: number };
  };
}

function summary(pools: PoolResource[]): string {
  return table(
    ['NAME', 'TYPE', 'BACKEND', 'STATE', 'READY', 'ALLOCATED', 'PENDING', 'ENDPOINT'],
    pools.map((p) => [
      p.name,
      p.properties.containerType,
      p.backend,
      p.properties.provisioningState,
      String(p.properties.status.readySessionCount),
      String(p.properties.status.allocatedSessionCount),
      String(p.properties.status.pendingSessionCount),
      p.properties.poolManagementEndpoint,
    ]),
  );
}

async function definition(parsed: ReturnType<typeof parse>): Promise<Record<string, unknown>> {
  const file = stringOption(parsed, 'properties');
  const properties: Record<string, unknown> =
    file === undefined ? {} : (JSON.parse(await readFile(file, 'utf8')) as Record<string, unknown>);
  const type = stringOption(parsed, 'container-type');
  if (type !== undefined) properties['containerType'] = type;
  const ready = numberOption(parsed, 'ready');
  const max = numberOption(parsed, 'max');
  if (ready !== undefined || max !== undefined) {
    properties['scaleConfiguration'] = {
      ...(properties['scaleConfiguration'] as object | undefined),
      ...(ready === undefined ? {} : { readySessionInstances: ready }),
      ...(max === undefined ? {} : { maxConcurrentSessions: max }),
    };
  }
  const cooldown = numberOption(parsed, 'cooldown');
  if (cooldown !== undefined) {
    properties['dynamicPoolConfiguration'] = {
      lifecycleConfiguration: { lifecycleType: 'Timed', cooldownPeriodInSeconds: cooldown },
    };
  }
  const backend = stringOption(parsed, 'backend');
  return { properties, ...(backend === undefined ? {} : { backend }) };
}

export async function pool(argv: readonly string[]): Promise<number> {
  const parsed = parse(argv, OPTIONS);
  const [sub, name] = parsed.positionals;
  if (parsed.values['help'] === true || sub === undefined) {
    process.stdout.write(`${POOL_HELP}\n`);
    return sub === undefined && parsed.values['help'] !== true ? 2 : 0;
  }
  const config = clientConfig(parsed.values);
  const json = parsed.values['json'] === true;
  const needName = (): string => {
    if (name === undefined) throw new UsageError(`sandpool pool ${sub} needs a pool NAME`);
    return encodeURIComponent(name);
  };
  switch (sub) {
    case 'list': {
      const body = (await callJson(config, 'GET', '/pools')) as { value: PoolResource[] };
      print(json, body, () => summary(body.value));
      return 0;
    }
    case 'get': {
      const body = (await callJson(config, 'GET', `/pools/${needName()}`)) as PoolResource;
      print(json, body, () => summary([body]));
      return 0;
    }
    case 'create':
    case 'update': {
      const path = `/pools/${needName()}`;
      const body = (await callJson(config, sub === 'create' ? 'PUT' : 'PATCH', path, await definition(parsed))) as PoolResource;
      print(json, body, () => summary([body]));
      return 0;
    }
    case 'delete': {
      await callJson(config, 'DELETE', `/pools/${needName()}`);
      print(json, { deleted: name }, () => `deleted pool ${name ?? ''}\n`);
      return 0;
    }
    default:
      throw new UsageError(`unknown pool command "${sub}" (create, list, get, update or delete)`);
  }
}
