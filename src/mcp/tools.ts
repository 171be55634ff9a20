/**
 * The MCP tools over one SessionPool: run_code, run_shell (where the pool runs shell commands),
 * write_file, read_file, list_files (where sessions have files), reset_session. Each tool is a
 * thin call into the library; a SandpoolError becomes an MCP tool error naming its code, so the
 * model sees what went wrong and the server carries on.
 */

import type { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { z } from 'zod';

import type { ImageOutput, Language } from '../backend.js';
import type { Environment } from '../environment.js';
import { FileError, ErrorCode, toSandpoolError } from '../errors.js';
import type { SessionApi } from '../session.js';
import type { SessionPool } from '../session-pool.js';
import type { ExecutionResult } from '../session-types.js';

/** Largest file read_file returns (MCP messages travel whole). */
export const MAX_READ_BYTES = 8 * 1024 * 1024;
/** Largest file write_file takes (base64 included, before decoding). */
const MAX_WRITE_CHARS = 48 * 1024 * 1024;
const MAX_CODE_CHARS = 4 * 1024 * 1024;

/**
 * Where the tools get sessions: a pool of this process, or (the server in cluster mode) whichever
 * member owns the identifier. `pool` describes what the sessions can do.
 */
export interface McpSessionSource {
  readonly pool: SessionPool;
  acquire(
    identifier: string,
    options: { readonly signal?: AbortSignal | undefined; readonly env?: Environment | undefined },
  ): Promise<SessionApi>;
  /** End the identifier's session; false when it had none. */
  release(identifier: string): Promise<boolean>;
}

/** A source over a pool of this process. */
export function localSessions(pool: SessionPool): McpSessionSource {
  return {
    pool,
    acquire: (identifier, options) => pool.acquire(identifier, options),
    release: (identifier) => pool.release(identifier),
  };
}

/** Which sandbox a tool call uses: the MCP session's own identifier unless the call names one. */
export interface ToolSessions {
  /** The identifier for this call (acquiring marks the MCP session's own one as used). */
  identifierFor(named: string | undefined): string;
  /** Variables bound to a session the MCP connection's own identifier claims. */
  readonly env?: Environment | undefined;
}

interface ToolExtra {
  readonly signal: AbortSignal;
  readonly _meta?: { readonly progressToken?: string | number | undefined } | undefined;
  sendNotification(notification: {
    method: 'notifications/progress';
    params: { progressToken: string | number; progress: number; message?: string };
  }): Promise<void>;
}

const sessionField = z
  .string()
  .min(1)
  .max(256)
  .optional()
  .describe(
    'Name of the sandbox session to use. Leave it out to use this connection’s own session (created on first use, kept between calls, released when the connection closes).',
  );
const timeoutField = z
  .number()
  .positive()
  .optional()
  .describe('Time limit in seconds; the code is interrupted when it passes (capped by the pool).');

function errorResult(error: unknown): CallToolResult {
  const failure = toSandpoolError(error, 'the tool failed');
  return {
    isError: true,
    content: [{ type: 'text', text: `${failure.code}: ${failure.message}` }],
    _meta: { 'sandpool/errorCode': failure.code },
  };
}

function images(result: ExecutionResult): ImageOutput[] {
  const all = [...result.images];
  const value = result.result as unknown;
  if (typeof value === 'object' && value !== null && (value as { type?: unknown }).type === 'image')
    all.push(value as ImageOutput);
  return all;
}

const MIME: Record<ImageOutput['format'], string> = { png: 'image/png', jpeg: 'image/jpeg', svg: 'image/svg+xml' };

/** An execution as MCP content: one text block (status, streams, value), then every image. */
export function executionContent(result: ExecutionResult): CallToolResult {
  const lines = [`status: ${result.status}${result.exitCode === undefined ? '' : ` (exit code ${result.exitCode})`}`];
  if (result.error !== undefined) lines.push(`error: ${result.error.code}: ${result.error.message}`);
  if (result.stdout !== '') lines.push(`stdout:\n${result.stdout}`);
  if (result.stderr !== '') lines.push(`stderr:\n${result.stderr}`);
  const value = result.result;
  const isImage = typeof value === 'object' && value !== null && (value as { type?: unknown }).type === 'image';
  if (value !== '' && value !== null && !isImage)
    lines.push(`result: ${typeof value === 'string' ? value : JSON.stringify(value)}`);
  if (result.sessionState !== 'kept') lines.push(`session: ${result.sessionState} (variables and imports were lost)`);
  return {
    content: [
      { type: 'text', text: lines.join('\n') },
      ...images(result).map((image) => ({ type: 'image' as const, data: image.base64_data, mimeType: MIME[image.format] })),
    ],
  };
}

/** Stream output to a client that asked for progress (`_meta.progressToken`); best effort. */
function progressReporter(extra: ToolExtra): ((text: string) => void) | undefined {
  const token = extra._meta?.progressToken;
  if (token === undefined) return undefined;
  let progress = 0;
  return (text) => {
    progress += 1;
    extra
      .sendNotification({ method: 'notifications/progress', params: { progressToken: token, progress, message: text } })
      .catch(() => undefined);
  };
}

/** Register the tools the pool supports on `server`. */
export function registerSandpoolTools(server: McpServer, source: McpSessionSource, sessions: ToolSessions): void {
  const { pool } = source;
  const backend = pool.backend;
  const containerType = pool.options.containerType;
  const codeLanguages = backend.capabilities.languages.filter((l): l is Exclude<Language, 'shell'> => l !== 'shell');
  const runsCode = containerType !== 'CustomContainer' && containerType !== 'Shell' && codeLanguages.length > 0;
  const runsShell = containerType !== 'CustomContainer' && backend.capabilities.languages.includes('shell');
  const hasFiles = containerType !== 'CustomContainer' && backend.capabilities.files;
  const defaultLanguage = containerType === 'NodeLTS' ? 'javascript' : 'python';

  const acquire = (named: string | undefined, signal: AbortSignal): Promise<SessionApi> =>
    source.acquire(sessions.identifierFor(named), { signal, ...(named === undefined ? { env: sessions.env } : {}) });

  async function execute(
    args: { session?: string | undefined; timeout_seconds?: number | undefined },
    request: { code: string; language: Language },
    extra: ToolExtra,
  ): Promise<CallToolResult> {
    try {
      const session = await acquire(args.session, extra.signal);
      const report = progressReporter(extra);
      const result = await session.execute({
        ...request,
        timeoutInSeconds: args.timeout_seconds,
        signal: extra.signal,
        ...(report === undefined ? {} : { onOutput: (chunk) => (chunk.type === 'display' ? undefined : report(chunk.text)) }),
      });
      return executionContent(result);
    } catch (error) {
      return errorResult(error);
    }
  }

  if (runsCode) {
    const languages = codeLanguages as [Exclude<Language, 'shell'>, ...Exclude<Language, 'shell'>[]];
    server.registerTool(
      'run_code',
      {
        title: 'Run code in a sandbox',
        description:
          `Run ${languages.join(' or ')} code in an isolated sandbox session (${backend.capabilities.isolation} isolation) that keeps its state between calls: ` +
          'variables, imports and files under /mnt/data stay. Returns stdout, stderr, the value of the last expression and ' +
          (containerType === 'PythonLTS' ? 'matplotlib figures as images (plt.show() or a figure left open). ' : 'its result. ') +
          'Numpy, pandas and matplotlib are preinstalled for Python. The sandbox has no network access unless the pool allows it.',
        inputSchema: {
          code: z.string().max(MAX_CODE_CHARS).describe('The code to run, as a notebook cell: the last expression is returned.'),
          language: z
            .enum(languages)
            .optional()
            .describe(
              `Language of the code (default ${codeLanguages.includes(defaultLanguage) ? defaultLanguage : languages[0]}).`,
            ),
          session: sessionField,
          timeout_seconds: timeoutField,
        },
        annotations: { readOnlyHint: false, destructiveHint: false, openWorldHint: false },
      },
      async (args, extra) =>
        execute(
          args,
          {
            code: args.code,
            language: args.language ?? (codeLanguages.includes(defaultLanguage) ? defaultLanguage : languages[0]),
          },
          extra,
        ),
    );
  }

  if (runsShell) {
    server.registerTool(
      'run_shell',
      {
        title: 'Run a shell command in a sandbox',
        description:
          'Run a command line with /bin/sh in the sandbox session, in /mnt/data. Returns its exit code, stdout and stderr. ' +
          'Files it writes under /mnt/data can be read with read_file.',
        inputSchema: {
          command: z.string().max(MAX_CODE_CHARS).describe('The command line, e.g. "ls -la" or "python3 script.py".'),
          session: sessionField,
          timeout_seconds: timeoutField,
        },
        annotations: { readOnlyHint: false, destructiveHint: false, openWorldHint: false },
      },
      async (args, extra) => execute(args, { code: args.command, language: 'shell' }, extra),
    );
  }

  if (hasFiles) {
    server.registerTool(
      'write_file',
      {
        title: 'Write a file into the sandbox',
        description:
          'Create or replace a file under /mnt/data in the sandbox session (parent folders are created). Code running in the session reads it as /mnt/data/PATH.',
        inputSchema: {
          path: z.string().min(1).max(4096).describe('Path relative to /mnt/data, e.g. "data/input.csv".'),
          content: z.string().max(MAX_WRITE_CHARS).describe('The file content: text, or base64 when encoding is "base64".'),
          encoding: z.enum(['utf8', 'base64']).optional().describe('How content is encoded (default utf8).'),
          session: sessionField,
        },
        annotations: { readOnlyHint: false, destructiveHint: true, idempotentHint: true, openWorldHint: false },
      },
      async (args, extra) => {
        try {
          const session = await acquire(args.session, extra.signal);
          const data = args.encoding === 'base64' ? Buffer.from(args.content, 'base64') : Buffer.from(args.content, 'utf8');
          const info = await session.uploadFile(args.path, data);
          return { content: [{ type: 'text', text: `wrote /mnt/data/${info.path} (${info.sizeInBytes} bytes)` }] };
        } catch (error) {
          return errorResult(error);
        }
      },
    );

    server.registerTool(
      'read_file',
      {
        title: 'Read a file from the sandbox',
        description: `Read a file under /mnt/data in the sandbox session (at most ${MAX_READ_BYTES / (1024 * 1024)} MiB). Text comes back as text, PNG/JPEG images as images, other binary data as base64.`,
        inputSchema: {
          path: z.string().min(1).max(4096).describe('Path relative to /mnt/data.'),
          encoding: z.enum(['utf8', 'base64']).optional().describe('Force the answer as text or base64 (default: detect).'),
          session: sessionField,
        },
        annotations: { readOnlyHint: true, openWorldHint: false },
      },
      async (args, extra) => {
        try {
          const session = await acquire(args.session, extra.signal);
          const data = await readWhole(session, args.path);
          return fileContent(args.path, data, args.encoding);
        } catch (error) {
          return errorResult(error);
        }
      },
    );

    server.registerTool(
      'list_files',
      {
        title: 'List files in the sandbox',
        description: 'List files and folders under /mnt/data (or a sub-folder) in the sandbox session, with sizes.',
        inputSchema: {
          path: z.string().max(4096).optional().describe('Folder relative to /mnt/data (default: /mnt/data itself).'),
          recursive: z.boolean().optional().describe('Include sub-folders’ contents (default false).'),
          session: sessionField,
        },
        annotations: { readOnlyHint: true, openWorldHint: false },
      },
      async (args, extra) => {
        try {
          const session = await acquire(args.session, extra.signal);
          const files = await session.listFiles({ path: args.path, recursive: args.recursive });
          const text =
            files.length === 0
              ? '(no files)'
              : files
                  .map(
                    (f) =>
                      `${f.type === 'directory' ? 'dir ' : 'file'} ${f.path}${f.type === 'file' ? ` (${f.sizeInBytes} bytes)` : ''}`,
                  )
                  .join('\n');
          return { content: [{ type: 'text', text }] };
        } catch (error) {
          return errorResult(error);
        }
      },
    );
  }

  server.registerTool(
    'reset_session',
    {
      title: 'Reset the sandbox session',
      description:
        'Destroy the sandbox session with everything in it (variables, files). The next call starts a fresh session in a few milliseconds.',
      inputSchema: { session: sessionField },
      annotations: { readOnlyHint: false, destructiveHint: true, idempotentHint: true, openWorldHint: false },
    },
    async (args) => {
      try {
        const released = await source.release(sessions.identifierFor(args.session));
        return { content: [{ type: 'text', text: released ? 'the session was reset' : 'there was no session to reset' }] };
      } catch (error) {
        return errorResult(error);
      }
    },
  );
}

async function readWhole(session: SessionApi, path: string): Promise<Buffer> {
  const { info, body } = await session.downloadFile(path);
  if (info.sizeInBytes > MAX_READ_BYTES) {
    // Stop the transfer before it starts.
    await body[Symbol.asyncIterator]().return?.();
    throw new FileError(
      ErrorCode.FILE_TOO_LARGE,
      `${path} has ${info.sizeInBytes} bytes; read_file returns at most ${MAX_READ_BYTES}`,
    );
  }
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of body) {
    total += chunk.length;
    if (total > MAX_READ_BYTES)
      throw new FileError(ErrorCode.FILE_TOO_LARGE, `${path} grew past ${MAX_READ_BYTES} bytes while read`);
    chunks.push(Buffer.from(chunk));
  }
  return Buffer.concat(chunks);
}

const PNG = Buffer.from([0x89, 0x50, 0x4e, 0x47]);
const JPEG = Buffer.from([0xff, 0xd8, 0xff]);

function fileContent(path: string, data: Buffer, encoding: 'utf8' | 'base64' | undefined): CallToolResult {
  if (encoding === undefined && data.subarray(0, 4).equals(PNG)) {
    return { content: [{ type: 'image', data: data.toString('base64'), mimeType: 'image/png' }] };
  }
  if (encoding === undefined && data.subarray(0, 3).equals(JPEG)) {
    return { content: [{ type: 'image', data: data.toString('base64'), mimeType: 'image/jpeg' }] };
  }
  const text = encoding === 'base64' ? undefined : decodeUtf8(data);
  if (text !== undefined) return { content: [{ type: 'text', text }] };
  return { content: [{ type: 'text', text: `base64 of ${path} (${data.length} bytes):\n${data.toString('base64')}` }] };
}

function decodeUtf8(data: Buffer): string | undefined {
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(data);
  } catch {
    return undefined;
  }
}
