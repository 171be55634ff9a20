/** `sandpool serve`: the HTTP server with the built-in pools, persisted pools and every backend. */

import { mkdirSync } from 'node:fs';

import type { JSONWebKeySet } from 'jose';
import { readFileSync } from 'node:fs';

import { InvalidOptionsError } from '../../errors.js';
import { createServer, isLoopback, type SandpoolServer } from '../../server/create-server.js';
import { jsonLinesLogger, type Logger, type LogLevel } from '../../server/logging.js';
import type { AnnouncedPool } from '../../server/readiness.js';
import type { BackendFactory } from '../../server/pool-registry.js';
import { COMMON_OPTIONS, UsageError, numberOption, parse, stringOption, type OptionSpec } from '../args.js';
import { BACKEND_NAMES, createBackend } from '../backend-loader.js';
import { builtinPools } from '../builtin-pools.js';
import { defaultDataDir, devJwks, watchApiKeys } from '../state-dir.js';

export const SERVE_HELP = `Usage: sandpool serve [options]

Serve the Azure dynamic-sessions compatible API, and E2B's under /e2b (docs/E2B.md).

Options:
  --listen HOST:PORT        address to listen on (default 127.0.0.1:8080)
  --data-dir DIR            state folder: pool definitions, API keys, dev JWT keys
                            (default ${defaultDataDir()})
  --pools LIST              built-in pools to serve: python,javascript,shell or none (default all)
  --jwks-url URL            verify JWT bearer tokens against this JWKS endpoint
  --jwks-file FILE          verify JWT bearer tokens against these static keys (JWKS JSON)
  --jwt-issuer ISS          required token issuer
  --jwt-audience AUD        accepted audience (repeatable; default https://dynamicsessions.io)
  --accept-legacy-audience  also accept https://acasessions.io
  --roles-claim NAME        claim that holds roles (default roles)
  --tls-cert FILE --tls-key FILE   serve HTTPS
  --public-url URL          base URL reported in poolManagementEndpoint
  --public-metrics          serve /metrics without credentials
  --max-acquire-wait SECONDS  longest a request waits for its session: a cold start, or a free
                            slot when it sent Prefer: wait=N (default 60; 503 past it)
  --e2b-template ID=POOL    E2B templateID served by a pool (repeatable; code-interpreter-v1 and
                            base map to python by default)
  --no-e2b                  do not serve the E2B-compatible API under /e2b
  --log-level LEVEL         debug, info, warn or error (default info)

Cluster mode (one pool across hosts; see docs/CLUSTER.md):
  --etcd URL[,URL…]         etcd client URLs: identifier ownership and pool definitions live there
  --advertise URL           this member's URL as the other members reach it
  --node-id NAME            unique member name (letters, digits, -)
  --etcd-prefix PREFIX      key prefix in etcd (default sandpool/)
  --lease-ttl SECONDS       member lease; a dead member's identifiers are free after it (default 10)
  The shared cluster secret (32+ characters) comes from SANDPOOL_CLUSTER_SECRET or
  --cluster-secret-file FILE.
  -h, --help                show this help

Credentials: SANDPOOL_ADMIN_KEY (every role), API keys (sandpool keys create), JWTs
(sandpool token mints development ones). Without any, only a loopback address is allowed.
SIGTERM or SIGINT drains: in-flight requests finish, every pool closes.`;

const OPTIONS: OptionSpec = {
  ...COMMON_OPTIONS,
  listen: { type: 'string' },
  'data-dir': { type: 'string' },
  pools: { type: 'string' },
  'jwks-url': { type: 'string' },
  'jwks-file': { type: 'string' },
  'jwt-issuer': { type: 'string' },
  'jwt-audience': { type: 'string', multiple: true },
  'accept-legacy-audience': { type: 'boolean' },
  'roles-claim': { type: 'string' },
  'tls-cert': { type: 'string' },
  'tls-key': { type: 'string' },
  'public-url': { type: 'string' },
  'public-metrics': { type: 'boolean' },
  'max-acquire-wait': { type: 'string' },
  'log-level': { type: 'string' },
  etcd: { type: 'string' },
  advertise: { type: 'string' },
  'node-id': { type: 'string' },
  'etcd-prefix': { type: 'string' },
  'lease-ttl': { type: 'string' },
  'cluster-secret-file': { type: 'string' },
  'e2b-template': { type: 'string', multiple: true },
  'no-e2b': { type: 'boolean' },
};

/** `--e2b-template ID=POOL` values as the E2B API's template map. */
export function parseE2bTemplates(values: readonly string[]): Record<string, string> {
  const templates: Record<string, string> = {};
  for (const value of values) {
    const match = /^([^=\s]{1,128})=([^=\s]{1,128})$/.exec(value);
    if (match === null) throw new UsageError(`--e2b-template must be TEMPLATE=POOL, got "${value}"`);
    templates[match[1]!] = match[2]!;
  }
  return templates;
}

export function parseListen(value: string): { host: string; port: number } {
  const match = /^(?:\[([^\]]+)\]|([^:]*)):(\d{1,5})$/.exec(value) ?? /^()()(\d{1,5})$/.exec(value);
  const port = Number(match?.[3]);
  if (match === null || !Number.isInteger(port) || port > 65535)
    throw new UsageError(`--listen must be HOST:PORT, got "${value}"`);
  return { host: match[1] ?? (match[2] === '' || match[2] === undefined ? '127.0.0.1' : match[2]), port };
}

/** `--etcd …`: this process as a cluster member (etcd3 is loaded only then). */
async function clusterMember(parsed: ReturnType<typeof parse>) {
  const etcd = stringOption(parsed, 'etcd');
  const flags = ['advertise', 'node-id', 'etcd-prefix', 'lease-ttl', 'cluster-secret-file'];
  if (etcd === undefined) {
    const stray = flags.find((f) => stringOption(parsed, f) !== undefined);
    if (stray !== undefined) throw new UsageError(`--${stray} needs --etcd`);
    return undefined;
  }
  const advertise = stringOption(parsed, 'advertise');
  const nodeId = stringOption(parsed, 'node-id');
  if (advertise === undefined || nodeId === undefined) throw new UsageError('--etcd needs --advertise URL and --node-id NAME');
  const secretFile = stringOption(parsed, 'cluster-secret-file');
  const secret = (secretFile === undefined ? process.env['SANDPOOL_CLUSTER_SECRET'] : readFileSync(secretFile, 'utf8'))?.trim();
  if (secret === undefined || secret === '') {
    throw new UsageError('cluster mode needs the shared secret: SANDPOOL_CLUSTER_SECRET or --cluster-secret-file');
  }
  const ttl = numberOption(parsed, 'lease-ttl') ?? 10;
  if (!Number.isInteger(ttl) || ttl < 2 || ttl > 300)
    throw new UsageError('--lease-ttl must be a whole number of seconds, 2 to 300');
  const { ClusterMember, EtcdOwnershipStore } = await import('../../cluster/index.js');
  const hosts = etcd
    .split(',')
    .map((h) => h.trim())
    .filter(Boolean);
  return new ClusterMember({
    store: new EtcdOwnershipStore({ hosts, prefix: stringOption(parsed, 'etcd-prefix') }),
    nodeId,
    advertise,
    secret,
    lease: { ttlSeconds: ttl },
  });
}

export async function serve(argv: readonly string[]): Promise<number> {
  const parsed = parse(argv, OPTIONS);
  if (parsed.values['help'] === true) {
    process.stdout.write(`${SERVE_HELP}\n`);
    return 0;
  }
  if (parsed.positionals.length > 0) throw new UsageError(`unexpected argument "${parsed.positionals[0]}"`);
  const { host, port } = parseListen(stringOption(parsed, 'listen') ?? '127.0.0.1:8080');
  const dataDir = stringOption(parsed, 'data-dir') ?? defaultDataDir();
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const level = (stringOption(parsed, 'log-level') ?? 'info') as LogLevel;
  if (!['debug', 'info', 'warn', 'error'].includes(level)) throw new UsageError('--log-level must be debug, info, warn or error');
  const log = jsonLinesLogger(process.stderr, level);

  const maxAcquireWait = numberOption(parsed, 'max-acquire-wait');
  if (maxAcquireWait !== undefined && !(maxAcquireWait > 0 && maxAcquireWait <= 3600))
    throw new UsageError('--max-acquire-wait must be a number of seconds above 0, at most 3600');

  const certFile = stringOption(parsed, 'tls-cert');
  const keyFile = stringOption(parsed, 'tls-key');
  if ((certFile === undefined) !== (keyFile === undefined)) throw new UsageError('--tls-cert and --tls-key go together');

  const staticKeys: JSONWebKeySet = { keys: [] };
  const jwksFile = stringOption(parsed, 'jwks-file');
  if (jwksFile !== undefined) staticKeys.keys.push(...(JSON.parse(readFileSync(jwksFile, 'utf8')) as JSONWebKeySet).keys);
  staticKeys.keys.push(...(devJwks(dataDir)?.keys ?? []));
  const jwksUrl = stringOption(parsed, 'jwks-url');
  const audiences = parsed.values['jwt-audience'] as string[] | undefined;
  const jwtConfigured = jwksUrl !== undefined || staticKeys.keys.length > 0;

  const adminKey = process.env['SANDPOOL_ADMIN_KEY'];
  const apiKeys = watchApiKeys(dataDir);
  const credentialConfigured = (): boolean =>
    (adminKey !== undefined && adminKey !== '') || jwtConfigured || apiKeys().length > 0;
  if (!isLoopback(host) && !credentialConfigured()) {
    throw new InvalidOptionsError(
      `refusing to listen on ${host} without authentication: set SANDPOOL_ADMIN_KEY, create an API key (sandpool keys create) or configure JWTs, or listen on 127.0.0.1`,
    );
  }

  const backends: Record<string, BackendFactory> = {};
  for (const name of BACKEND_NAMES) backends[name] = () => createBackend(name);
  const poolsArg = stringOption(parsed, 'pools') ?? 'python,javascript,shell';
  const wanted = new Set(
    poolsArg === 'none'
      ? []
      : poolsArg
          .split(',')
          .map((s) => s.trim())
          .filter(Boolean),
  );

  // The built-in pools are set up after the server listens: /healthz answers at once, /readyz
  // answers 503 with each pool's state until they are ready, and the log says what is happening.
  const cluster = await clusterMember(parsed);
  const server = createServer({
    cluster,
    backends,
    defaultBackend: (type) => (type === 'NodeLTS' ? 'quickjs' : 'container'),
    dataDir,
    logger: log,
    auth: {
      adminKey: adminKey === '' ? undefined : adminKey,
      apiKeys,
      ...(jwtConfigured
        ? {
            jwt: {
              ...(jwksUrl === undefined ? {} : { jwksUrl }),
              ...(staticKeys.keys.length === 0 ? {} : { jwks: staticKeys }),
              issuer: stringOption(parsed, 'jwt-issuer'),
              audiences: audiences !== undefined && audiences.length > 0 ? audiences : undefined,
              acceptLegacyAudience: parsed.values['accept-legacy-audience'] === true,
              rolesClaim: stringOption(parsed, 'roles-claim'),
            },
          }
        : {}),
      // Open only on loopback, and only until a credential exists (the first `sandpool keys create`
      // closes it). On any other address a server whose last key was removed fails closed.
      anonymous: () => isLoopback(host) && !credentialConfigured(),
    },
    tls: certFile === undefined || keyFile === undefined ? undefined : { certFile, keyFile },
    publicUrl: stringOption(parsed, 'public-url'),
    publicMetrics: parsed.values['public-metrics'] === true,
    maxAcquireWaitSeconds: maxAcquireWait,
    e2b:
      parsed.values['no-e2b'] === true
        ? false
        : { templates: parseE2bTemplates((parsed.values['e2b-template'] as string[] | undefined) ?? []) },
  });

  let stopping = false;
  const stop = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    log({ level: 'info', msg: `${signal}: draining` });
    server.close().then(
      () => {
        log({ level: 'info', msg: 'stopped' });
        process.exitCode = 0;
      },
      (error: unknown) => {
        log({ level: 'error', msg: 'close failed', error: (error as Error).message });
        process.exitCode = 1;
      },
    );
  };
  process.once('SIGTERM', () => stop('SIGTERM'));
  process.once('SIGINT', () => stop('SIGINT'));

  try {
    const { url } = await server.listen({ host, port });
    const restored = server.pools().map((p) => p.name);
    process.stdout.write(
      `sandpool serving on ${url} (data dir ${dataDir}; pools: ${[...wanted, ...restored].join(', ') || 'none'}` +
        `${wanted.size > 0 ? `; built-in pools starting, GET ${url}/readyz says when they are ready` : ''})\n`,
    );
  } catch (error) {
    await server.close();
    throw error;
  }
  if (wanted.size > 0) void startBuiltinPools(server, log, wanted, () => stopping, dataDir);
  return -1; // keep running until a signal
}

/** Probe and add the built-in pools one by one, each served as soon as its backend is chosen. */
async function startBuiltinPools(
  server: SandpoolServer,
  log: Logger,
  wanted: ReadonlySet<string>,
  stopping: () => boolean,
  dataDir: string,
): Promise<void> {
  const announced = new Map<string, AnnouncedPool>();
  const started = Date.now();
  try {
    await builtinPools(
      log,
      wanted,
      {
        probing: (name) => announced.set(name, server.announcePool(name)),
        chosen: (pool) => {
          if (stopping()) {
            void pool.close();
            return;
          }
          announced.get(pool.name)?.add(pool);
        },
        unavailable: (name) => announced.get(name)?.unavailable(),
      },
      dataDir,
    );
  } catch (error) {
    log({ level: 'error', msg: 'setting up the built-in pools failed', error: (error as Error).message });
    for (const pool of announced.values()) pool.unavailable();
    return;
  }
  // Say once when everything is ready (or what is not), without polling forever.
  for (;;) {
    if (stopping()) return;
    const { ready, pools } = server.readiness();
    if (ready) {
      log({
        level: 'info',
        msg: 'built-in pools ready',
        pools: pools.map((p) => `${p.name}: ${p.state}`),
        ms: Date.now() - started,
      });
      return;
    }
    await new Promise((resolve) => setTimeout(resolve, 1000).unref());
  }
}
