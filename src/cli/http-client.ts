/** The CLI's only way to reach a server: its HTTP API, with the caller's bearer token. */

import { CommandError } from './args.js';

export interface ClientConfig {
  /** Base URL of the server. @default $SANDPOOL_ENDPOINT or http://127.0.0.1:8080 */
  readonly endpoint: string;
  readonly token: string | undefined;
}

export function clientConfig(values: Record<string, unknown>): ClientConfig {
  const endpoint =
    (typeof values['endpoint'] === 'string' ? values['endpoint'] : undefined) ??
    process.env['SANDPOOL_ENDPOINT'] ??
    'http://127.0.0.1:8080';
  const token =
    (typeof values['token'] === 'string' ? values['token'] : undefined) ??
    process.env['SANDPOOL_TOKEN'] ??
    process.env['SANDPOOL_ADMIN_KEY'];
  return { endpoint: endpoint.replace(/\/+$/, ''), token: token === '' ? undefined : token };
}

/** Send a request; non-2xx becomes a CommandError carrying the server's error message. */
export async function call(
  config: ClientConfig,
  method: string,
  path: string,
  init: { body?: RequestInit['body']; headers?: Record<string, string> } = {},
): Promise<Response> {
  const headers: Record<string, string> = { ...init.headers };
  if (config.token !== undefined) headers['authorization'] = `Bearer ${config.token}`;
  let response: Response;
  try {
    response = await fetch(`${config.endpoint}${path}`, {
      method,
      headers,
      ...(init.body === undefined ? {} : ({ body: init.body, duplex: 'half' } as RequestInit)),
    });
  } catch (error) {
    const cause = (error as { cause?: { message?: string } }).cause?.message;
    throw new CommandError(`cannot reach ${config.endpoint}: ${cause ?? (error as Error).message}`);
  }
  if (!response.ok) {
    const text = await response.text();
    let message = text;
    try {
      const parsed = JSON.parse(text) as { error?: { code?: string; message?: string } };
      if (parsed.error !== undefined) message = `${parsed.error.code ?? ''}: ${parsed.error.message ?? ''}`;
    } catch {
      // not JSON: keep the text
    }
    throw new CommandError(`${method} ${path} failed with ${response.status}${message === '' ? '' : ` — ${message}`}`);
  }
  return response;
}

export async function callJson(config: ClientConfig, method: string, path: string, body?: unknown): Promise<unknown> {
  const response = await call(
    config,
    method,
    path,
    body === undefined ? {} : { body: JSON.stringify(body), headers: { 'content-type': 'application/json' } },
  );
  if (response.status === 204) return undefined;
  const text = await response.text();
  return text === '' ? undefined : (JSON.parse(text) as unknown);
}

/** `/pools/NAME/<operation>?identifier=ID&api-version=…` */
export function poolPath(pool: string, operation: string, query: Record<string, string | undefined> = {}): string {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(query)) if (v !== undefined) q.set(k, v);
  if (!q.has('api-version')) q.set('api-version', '2025-02-02-preview');
  return `/pools/${encodeURIComponent(pool)}/${operation}?${q.toString()}`;
}
