/** What every E2B handler gets: the server's state, the E2B settings, the sandboxes, one request. */

import type { IncomingMessage, ServerResponse } from 'node:http';

import { z } from 'zod';

import { InvalidOptionsError } from '../../errors.js';
import type { ServerState } from '../server-state.js';
import type { SandboxRegistry } from './sandboxes.js';

/** The E2B API's settings (`createServer({ e2b })`). */
export interface E2bOptions {
  /**
   * E2B `templateID` → pool name. `code-interpreter-v1` (the code interpreter SDK's default) and
   * `base` (the `e2b` SDK's default) map to `python` unless given here; any other template names
   * the pool of the same name.
   */
  readonly templates?: Readonly<Record<string, string>> | undefined;
  /** Lifetime of a sandbox whose create names no timeout, in seconds. @default 300 */
  readonly defaultTimeoutSeconds?: number | undefined;
  /** Longest timeout a create, connect or setTimeout may ask for, in seconds. @default 86400 */
  readonly maxTimeoutSeconds?: number | undefined;
}

const OptionsSchema = z
  .object({
    templates: z.record(z.string().min(1).max(128), z.string().min(1).max(128)).optional(),
    defaultTimeoutSeconds: z
      .number()
      .int()
      .min(1)
      .max(86_400 * 30)
      .optional(),
    maxTimeoutSeconds: z
      .number()
      .int()
      .min(1)
      .max(86_400 * 30)
      .optional(),
  })
  .strict();

export interface ResolvedE2bOptions {
  readonly templates: Readonly<Record<string, string>>;
  readonly defaultTimeoutSeconds: number;
  readonly maxTimeoutSeconds: number;
}

export const DEFAULT_TEMPLATES: Readonly<Record<string, string>> = { 'code-interpreter-v1': 'python', base: 'python' };

export function resolveE2bOptions(options: E2bOptions = {}): ResolvedE2bOptions {
  const parsed = OptionsSchema.safeParse(options);
  if (!parsed.success) {
    throw new InvalidOptionsError(
      `invalid e2b options: ${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`,
    );
  }
  const o = parsed.data;
  const maxTimeoutSeconds = o.maxTimeoutSeconds ?? 86_400;
  const defaultTimeoutSeconds = Math.min(o.defaultTimeoutSeconds ?? 300, maxTimeoutSeconds);
  return { templates: { ...DEFAULT_TEMPLATES, ...o.templates }, defaultTimeoutSeconds, maxTimeoutSeconds };
}

export interface E2bContext {
  readonly state: ServerState;
  readonly options: ResolvedE2bOptions;
  readonly sandboxes: SandboxRegistry;
}

/** What the dispatcher records about a request: operation (a fixed set), pool and principal. */
export interface AuditFields {
  operation?: string;
  pool?: string | undefined;
  principal?: string;
}

export interface E2bRequest {
  readonly req: IncomingMessage;
  readonly res: ServerResponse;
  readonly url: URL;
  readonly requestId: string;
  /** Aborted when the client goes away. */
  readonly signal: AbortSignal;
  /** Fill in the audit record and the metrics label. */
  audit(fields: AuditFields): void;
}
