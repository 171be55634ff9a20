/** `sandpool exec`, `sandpool files …` and `sandpool sessions …`: the data plane over HTTP (Gen 2 routes). */

import { createReadStream, createWriteStream } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { basename } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';

import {
  CLIENT_OPTIONS,
  CommandError,
  UsageError,
  numberOption,
  parse,
  requiredOption,
  stringOption,
  type OptionSpec,
} from '../args.js';
import { call, callJson, clientConfig, poolPath } from '../http-client.js';
import { print, table } from '../output.js';

const COMMON = `Common:
  --pool NAME      the session pool
  --id ID          the session identifier (get-or-create)
  --endpoint URL   server (default $SANDPOOL_ENDPOINT or http://127.0.0.1:8080)
  --token TOKEN    bearer credential (default $SANDPOOL_TOKEN or $SANDPOOL_ADMIN_KEY)
  --json           print the server's JSON
  -h, --help       show this help`;

export const EXEC_HELP = `Usage: sandpool exec --pool P --id ID [CODE] [--file F] [--timeout S]

Run code in the session ID of pool P. The code comes from the CODE argument, --file, or stdin.
For Shell pools it is a shell command line. Prints stdout, stderr and the result; the exit
code is 0 when the execution succeeded (Shell pools: the command's exit code).

Options:
  --file FILE      read the code from FILE ("-" for stdin)
  --timeout S      timeoutInSeconds
${COMMON}`;

export const FILES_HELP = `Usage: sandpool files <upload|download|ls|rm> --pool P --id ID [args]

  upload LOCAL [REMOTE]    upload a file to /mnt/data (REMOTE defaults to the base name)
  download REMOTE [LOCAL]  download a file (LOCAL "-" or absent: stdout)
  ls [DIR]                 list /mnt/data or a sub-directory (--recursive)
  rm REMOTE                delete a file
${COMMON}`;

export const SESSIONS_HELP = `Usage: sandpool sessions <ls|get|stop> --pool P [--id ID]

  ls     list allocated sessions with age, idle time and expiry
  get    show one session (--id)
  stop   stop and wipe one session (--id)
${COMMON}`;

const OPTIONS: OptionSpec = {
  ...CLIENT_OPTIONS,
  pool: { type: 'string' },
  id: { type: 'string' },
  file: { type: 'string' },
  timeout: { type: 'string' },
  recursive: { type: 'boolean' },
};

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin as AsyncIterable<Buffer>) chunks.push(chunk);
  return Buffer.concat(chunks).toString('utf8');
}

interface Gen2Execution {
  status: string;
  result: { stdout: string; stderr: string; executionResult: unknown };
}

export async function exec(argv: readonly string[]): Promise<number> {
  const parsed = parse(argv, OPTIONS);
  if (parsed.values['help'] === true) {
    process.stdout.write(`${EXEC_HELP}\n`);
    return 0;
  }
  const pool = requiredOption(parsed, 'pool');
  const id = requiredOption(parsed, 'id');
  const file = stringOption(parsed, 'file');
  if (parsed.positionals.length > 1) throw new UsageError('give the code as one argument (quote it), --file, or stdin');
  let code = parsed.positionals[0];
  if (code !== undefined && file !== undefined) throw new UsageError('give the code as an argument or --file, not both');
  if (code === undefined) code = file === undefined || file === '-' ? await readStdin() : await readFile(file, 'utf8');
  const timeout = numberOption(parsed, 'timeout');
  const config = clientConfig(parsed.values);
  const meta = (await callJson(config, 'GET', `/pools/${encodeURIComponent(pool)}`)) as { properties: { containerType: string } };
  const shell = meta.properties.containerType === 'Shell';
  const body = shell
    ? { shellCommand: code, ...(timeout === undefined ? {} : { timeoutInSeconds: timeout }) }
    : {
        codeInputType: 'Inline',
        executionType: 'Synchronous',
        code,
        ...(timeout === undefined ? {} : { timeoutInSeconds: timeout }),
      };
  const result = (await callJson(config, 'POST', poolPath(pool, 'executions', { identifier: id }), body)) as Gen2Execution;
  if (parsed.values['json'] === true) {
    process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
  } else {
    process.stdout.write(result.result.stdout);
    process.stderr.write(result.result.stderr);
    const value = result.result.executionResult;
    if (!shell && value !== '' && value !== null && value !== undefined) {
      process.stdout.write(`${typeof value === 'string' ? value : JSON.stringify(value)}\n`);
    }
  }
  if (shell) return Number.parseInt(result.status, 10) || 0;
  return result.status === 'Succeeded' ? 0 : 1;
}

interface ResourceFile {
  name: string;
  type: string;
  sizeInBytes: number;
  lastModifiedAt: string;
  directory?: string;
}

export async function files(argv: readonly string[]): Promise<number> {
  const parsed = parse(argv, OPTIONS);
  const [sub, a, b] = parsed.positionals;
  if (parsed.values['help'] === true || sub === undefined) {
    process.stdout.write(`${FILES_HELP}\n`);
    return sub === undefined && parsed.values['help'] !== true ? 2 : 0;
  }
  const pool = requiredOption(parsed, 'pool');
  const id = requiredOption(parsed, 'id');
  const config = clientConfig(parsed.values);
  const json = parsed.values['json'] === true;
  const needs = (v: string | undefined, what: string): string => {
    if (v === undefined || v === '') throw new UsageError(`sandpool files ${sub} needs ${what}`);
    return v;
  };
  switch (sub) {
    case 'upload': {
      const local = needs(a, 'a LOCAL file');
      const remote = b ?? basename(local);
      const size = (
        await stat(local).catch(() => {
          throw new CommandError(`cannot read ${local}`);
        })
      ).size;
      // Stream the file: a multipart body built by hand so large files are never held in memory.
      const boundary = `sandpool-${Math.random().toString(36).slice(2)}`;
      const head = Buffer.from(
        `--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="${remote.replace(/"/g, '%22')}"\r\nContent-Type: application/octet-stream\r\n\r\n`,
      );
      const tail = Buffer.from(`\r\n--${boundary}--\r\n`);
      async function* body(): AsyncIterable<Uint8Array> {
        yield head;
        yield* createReadStream(local) as AsyncIterable<Buffer>;
        yield tail;
      }
      const response = await call(config, 'POST', poolPath(pool, 'files', { identifier: id }), {
        body: Readable.toWeb(Readable.from(body())) as unknown as ReadableStream<Uint8Array>,
        headers: {
          'content-type': `multipart/form-data; boundary=${boundary}`,
          'content-length': String(head.length + size + tail.length),
        },
      });
      const info = (await response.json()) as ResourceFile;
      print(json, info, () => `uploaded ${info.name} (${info.sizeInBytes} bytes)\n`);
      return 0;
    }
    case 'download': {
      const remote = needs(a, 'a REMOTE file');
      const response = await call(
        config,
        'GET',
        poolPath(pool, `files/${remote.split('/').map(encodeURIComponent).join('/')}/content`, { identifier: id }),
      );
      const source = Readable.fromWeb(response.body as never);
      await pipeline(source, b === undefined || b === '-' ? process.stdout : createWriteStream(b));
      return 0;
    }
    case 'ls': {
      const query: Record<string, string | undefined> = {
        identifier: id,
        path: a,
        recursive: parsed.values['recursive'] === true ? 'true' : undefined,
      };
      const body = (await callJson(config, 'GET', poolPath(pool, 'files', query))) as { value: ResourceFile[] };
      print(json, body, () =>
        table(
          ['NAME', 'TYPE', 'SIZE', 'MODIFIED'],
          body.value.map((f) => [
            f.directory ? `${f.directory}/${f.name}` : f.name,
            f.type,
            String(f.sizeInBytes),
            f.lastModifiedAt,
          ]),
        ),
      );
      return 0;
    }
    case 'rm': {
      const remote = needs(a, 'a REMOTE file');
      await callJson(
        config,
        'DELETE',
        poolPath(pool, `files/${remote.split('/').map(encodeURIComponent).join('/')}`, { identifier: id }),
      );
      print(json, { deleted: remote }, () => `deleted ${remote}\n`);
      return 0;
    }
    default:
      throw new UsageError(`unknown files command "${sub}" (upload, download, ls or rm)`);
  }
}

interface SessionResource {
  identifier: string;
  createdAt: string;
  lastAccessedAt: string;
  expiresAt: string | null;
}

const ago = (iso: string | null, now: number): string => (iso === null ? '-' : `${Math.round((now - Date.parse(iso)) / 1000)}s`);

export async function sessions(argv: readonly string[]): Promise<number> {
  const parsed = parse(argv, OPTIONS);
  const [sub] = parsed.positionals;
  if (parsed.values['help'] === true || sub === undefined) {
    process.stdout.write(`${SESSIONS_HELP}\n`);
    return sub === undefined && parsed.values['help'] !== true ? 2 : 0;
  }
  const pool = requiredOption(parsed, 'pool');
  const config = clientConfig(parsed.values);
  const json = parsed.values['json'] === true;
  switch (sub) {
    case 'ls': {
      const body = (await callJson(config, 'GET', poolPath(pool, 'listSessions'))) as { value: SessionResource[] };
      const now = Date.now();
      print(json, body, () =>
        table(
          ['IDENTIFIER', 'AGE', 'IDLE', 'EXPIRES IN'],
          body.value.map((s) => [
            s.identifier,
            ago(s.createdAt, now),
            ago(s.lastAccessedAt, now),
            s.expiresAt === null ? '-' : `${Math.round((Date.parse(s.expiresAt) - now) / 1000)}s`,
          ]),
        ),
      );
      return 0;
    }
    case 'get': {
      const body = await callJson(config, 'GET', poolPath(pool, 'session', { identifier: requiredOption(parsed, 'id') }));
      print(json, body, () => `${JSON.stringify(body, null, 2)}\n`);
      return 0;
    }
    case 'stop': {
      const id = requiredOption(parsed, 'id');
      await callJson(config, 'DELETE', poolPath(pool, 'session', { identifier: id }));
      print(json, { stopped: id }, () => `stopped session ${id}\n`);
      return 0;
    }
    default:
      throw new UsageError(`unknown sessions command "${sub}" (ls, get or stop)`);
  }
}
