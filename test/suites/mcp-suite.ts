/**
 * The MCP tools as a real `@modelcontextprotocol/sdk` client sees them, over any transport: the
 * same cases run over stdio (`sandpool mcp`) and Streamable HTTP (`/mcp` of `sandpool serve`), on
 * isolates (JavaScript) and containers (Python, files, figures, shell).
 */

import type { Client } from '@modelcontextprotocol/sdk/client/index.js';
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { expect, it } from 'vitest';

export interface McpSuiteOptions {
  /** A new, initialized client (its own MCP session); the suite closes it. */
  readonly connect: () => Promise<Client>;
  readonly language: 'python' | 'javascript';
  /** The pool has files (write_file, read_file, list_files) and figures. */
  readonly files: boolean;
  readonly shell: boolean;
  /** Clients share one pool (HTTP); over stdio every client runs its own process and pool. */
  readonly sharedPool: boolean;
  readonly timeoutMs?: number | undefined;
}

export function textOf(result: CallToolResult): string {
  return result.content
    .filter((c): c is Extract<CallToolResult['content'][number], { type: 'text' }> => c.type === 'text')
    .map((c) => c.text)
    .join('\n');
}

export async function call(client: Client, name: string, args: Record<string, unknown>): Promise<CallToolResult> {
  return (await client.callTool({ name, arguments: args })) as CallToolResult;
}

export function defineMcpCases(o: McpSuiteOptions): void {
  const timeout = o.timeoutMs ?? 60_000;
  const py = o.language === 'python';
  const with_ = async (run: (client: Client) => Promise<void>): Promise<void> => {
    const client = await o.connect();
    try {
      await run(client);
    } finally {
      await client.close();
    }
  };

  it(
    'lists the tools, each with a description and a JSON schema',
    () =>
      with_(async (client) => {
        const { tools } = await client.listTools();
        const names = tools.map((t) => t.name).sort();
        const expected = ['reset_session', 'run_code'];
        if (o.files) expected.push('list_files', 'read_file', 'write_file');
        if (o.shell) expected.push('run_shell');
        expect(names).toEqual(expected.sort());
        for (const tool of tools) {
          expect(tool.description?.length ?? 0, tool.name).toBeGreaterThan(40);
          expect(tool.inputSchema.type).toBe('object');
        }
        const runCode = tools.find((t) => t.name === 'run_code')!;
        expect(runCode.inputSchema.required).toEqual(['code']);
        expect(Object.keys(runCode.inputSchema.properties ?? {})).toEqual(
          expect.arrayContaining(['code', 'language', 'session', 'timeout_seconds']),
        );
      }),
    timeout,
  );

  it(
    'keeps state in the connection’s own session: x = 41, then x + 1',
    () =>
      with_(async (client) => {
        const set = await call(client, 'run_code', { code: py ? 'x = 41\nprint("set")' : 'var x = 41; console.log("set")' });
        expect(set.isError).toBeFalsy();
        expect(textOf(set)).toContain('status: Succeeded');
        expect(textOf(set)).toContain('stdout:\nset\n');
        const next = await call(client, 'run_code', { code: 'x + 1' });
        expect(textOf(next)).toContain('result: 42');
      }),
    timeout,
  );

  it(
    'keeps two clients’ sessions apart, and reset_session starts over',
    async () => {
      const a = await o.connect();
      const b = await o.connect();
      try {
        await call(a, 'run_code', { code: py ? 'secret = "a-only"' : 'var secret = "a-only"' });
        const seen = await call(b, 'run_code', { code: 'secret' });
        expect(textOf(seen)).toContain('status: Failed');
        expect(textOf(seen)).toMatch(py ? /NameError/ : /ReferenceError/);
        expect(textOf(await call(a, 'run_code', { code: 'secret' }))).toContain('result: a-only');
        expect(textOf(await call(a, 'reset_session', {}))).toBe('the session was reset');
        expect(textOf(await call(a, 'run_code', { code: 'secret' }))).toContain('status: Failed');
      } finally {
        await Promise.all([a.close(), b.close()]);
      }
    },
    timeout,
  );

  it.skipIf(!o.sharedPool)(
    'shares a session between clients that name it',
    async () => {
      const a = await o.connect();
      const b = await o.connect();
      const session = `mcp-shared-${Date.now()}`;
      try {
        await call(a, 'run_code', { code: py ? 'shared = 7' : 'var shared = 7', session });
        expect(textOf(await call(b, 'run_code', { code: 'shared * 6', session }))).toContain('result: 42');
      } finally {
        await Promise.all([a.close(), b.close()]);
      }
    },
    timeout,
  );

  it(
    'answers a bad request with an MCP tool error carrying the sandpool code',
    () =>
      with_(async (client) => {
        const bad = await call(client, 'run_code', { code: '1', session: 'not a valid identifier!' });
        expect(bad.isError).toBe(true);
        expect(textOf(bad)).toMatch(/^SANDPOOL_INVALID_IDENTIFIER: /);
        expect(bad._meta?.['sandpool/errorCode']).toBe('SANDPOOL_INVALID_IDENTIFIER');
        // Arguments that break the schema are refused by the SDK, and the server carries on.
        const wrong = await call(client, 'run_code', { code: 42 });
        expect(wrong.isError).toBe(true);
        expect(textOf(await call(client, 'run_code', { code: '6 * 7' }))).toContain('result: 42');
      }),
    timeout,
  );

  if (o.files) {
    it(
      'writes a file, reads it back, lists it, and code sees it under /mnt/data',
      () =>
        with_(async (client) => {
          const wrote = await call(client, 'write_file', { path: 'notes/hello.txt', content: 'hello from mcp\n' });
          expect(textOf(wrote)).toBe('wrote /mnt/data/notes/hello.txt (15 bytes)');
          expect(textOf(await call(client, 'read_file', { path: 'notes/hello.txt' }))).toBe('hello from mcp\n');
          const listed = textOf(await call(client, 'list_files', { recursive: true }));
          expect(listed).toContain('file notes/hello.txt (15 bytes)');
          const read = await call(client, 'run_code', { code: 'open("/mnt/data/notes/hello.txt").read().strip()' });
          expect(textOf(read)).toContain('result: hello from mcp');
          const missing = await call(client, 'read_file', { path: 'nope.txt' });
          expect(missing.isError).toBe(true);
          expect(textOf(missing)).toMatch(/^SANDPOOL_FILE_NOT_FOUND: /);
        }),
      timeout,
    );

    it(
      'returns a matplotlib figure as MCP image content',
      () =>
        with_(async (client) => {
          const code = 'import matplotlib.pyplot as plt\nplt.plot([1, 4, 9])\nplt.title("squares")\nplt.show()';
          const result = await call(client, 'run_code', { code });
          const images = result.content.filter((c) => c.type === 'image');
          expect(images).toHaveLength(1);
          const image = images[0] as { data: string; mimeType: string };
          expect(image.mimeType).toBe('image/png');
          expect(Buffer.from(image.data, 'base64').subarray(1, 4).toString()).toBe('PNG');
        }),
      timeout,
    );
  }

  if (o.shell) {
    it(
      'runs shell commands with their exit code',
      () =>
        with_(async (client) => {
          const ok = await call(client, 'run_shell', { command: 'echo hi; echo oops >&2' });
          expect(textOf(ok)).toContain('status: Succeeded (exit code 0)');
          expect(textOf(ok)).toContain('stdout:\nhi\n');
          expect(textOf(ok)).toContain('stderr:\noops\n');
          expect(textOf(await call(client, 'run_shell', { command: 'exit 3' }))).toContain('exit code 3');
        }),
      timeout,
    );
  }
}
