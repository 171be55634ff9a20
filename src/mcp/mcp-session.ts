/**
 * One MCP connection over a SessionPool: an `McpServer` with sandpool's tools, and the sandbox
 * identifier that connection owns. The identifier is random (128 bits), taken on the first tool
 * call that does not name another one, and released when the connection closes, so a client that
 * goes away does not keep a sandbox until its cooldown.
 */

import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';

import type { Environment } from '../environment.js';
import { generateIdentifier } from '../identifier.js';
import { registerSandpoolTools, type McpSessionSource } from './tools.js';

/** Reported to MCP clients as the server's version (`initialize`). */
export const MCP_SERVER_VERSION = '0.1.0';

export interface McpSessionOptions {
  /** Name shown to MCP clients. @default `sandpool-<pool name>` */
  readonly name?: string | undefined;
  /** Environment variables bound to this connection's own sandbox when it is claimed (secrets). */
  readonly env?: Environment | undefined;
}

export class SandpoolMcpSession {
  readonly server: McpServer;
  readonly source: McpSessionSource;
  /** This connection's own sandbox identifier (a caller secret: never logged). */
  readonly identifier: string = generateIdentifier();
  #used = false;
  #closed: Promise<void> | undefined;

  /** `source`: a pool of this process (`localSessions(pool)`), or the server's cluster-aware one. */
  constructor(source: McpSessionSource, options: McpSessionOptions = {}) {
    this.source = source;
    const { pool } = source;
    this.server = new McpServer(
      { name: options.name ?? `sandpool-${pool.name}`, version: MCP_SERVER_VERSION },
      {
        instructions:
          `Tools run code in isolated sandboxes of the sandpool pool "${pool.name}". ` +
          'One sandbox session belongs to this connection and keeps its state between calls; reset_session starts over.',
      },
    );
    registerSandpoolTools(this.server, source, {
      env: options.env,
      identifierFor: (named) => {
        if (named !== undefined) return named;
        this.#used = true;
        return this.identifier;
      },
    });
  }

  /** Close the MCP server and release this connection's sandbox. Idempotent; never rejects. */
  close(): Promise<void> {
    if (this.#closed === undefined) {
      let done!: () => void;
      this.#closed = new Promise<void>((resolve) => (done = resolve));
      // Assigned before anything runs: closing the server closes its transport, whose onclose calls back here.
      void (async () => {
        await this.server.close().catch(() => undefined);
        if (this.#used && !this.source.pool.closed) await this.source.release(this.identifier).catch(() => undefined);
      })().finally(done);
    }
    return this.#closed;
  }
}
