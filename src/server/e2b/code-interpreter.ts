/**
 * The code interpreter's HTTP API (port 49999 of an E2B sandbox): `POST /execute` answers a stream
 * of JSON lines (`number_of_executions`, `stdout`, `stderr`, `result`, `error`, `end_of_execution`)
 * and `/contexts` lists the default contexts. Code runs in the sandbox's session, so state persists
 * across calls and files are shared with the files API and commands.
 */

import { z } from 'zod';

import type { Language } from '../../backend.js';
import { sendJson, sendText } from '../http-io.js';
import { readJsonObject } from '../request-body.js';
import type { E2bContext, E2bRequest } from './context.js';
import { badArgument, notFound, parseOrRefuse, toE2bError, unsupported } from './errors.js';
import { LineWriter, OutputRelay } from './output-relay.js';
import { E2B_HOME } from './paths.js';
import type { LiveSandbox } from './sandboxes.js';

const ExecuteBody = z.object({
  code: z.string().max(4 * 1024 * 1024),
  context_id: z.string().max(128).nullish(),
  language: z.string().max(64).nullish(),
  env_vars: z.record(z.string().regex(/^[A-Za-z_][A-Za-z0-9_]{0,255}$/), z.string().max(131_072)).nullish(),
});

const KEEPALIVE_MS = 30_000;

/** E2B's language names (normalised like the interpreter server does) → sandpool's. */
function languageOf(name: string): Language {
  const key = name.trim().toLowerCase();
  if (key === 'python' || key === 'python3' || key === 'py') return 'python';
  if (key === 'javascript' || key === 'js' || key === 'node' || key === 'nodejs') return 'javascript';
  if (key === 'bash' || key === 'sh' || key === 'shell') return 'shell';
  throw badArgument(`language "${name.slice(0, 64)}" is not supported (python, javascript and bash are)`);
}

/** The default contexts: one per language the sandbox's backend runs, named after it. */
function contexts(live: LiveSandbox): { id: string; language: string; cwd: string }[] {
  const languages = live.pool.backend.capabilities.languages;
  return (['python', 'javascript'] as const)
    .filter((l) => languages.includes(l))
    .map((language) => ({ id: language, language, cwd: E2B_HOME }));
}

function requireLanguage(live: LiveSandbox, language: Language): Language {
  if (!live.pool.backend.capabilities.languages.includes(language)) {
    throw badArgument(`this sandbox's backend (${live.pool.backend.name}) does not run ${language}`);
  }
  if (live.pool.options.containerType === 'Shell' && language !== 'shell') {
    throw badArgument('this sandbox runs shell commands only (its template names a Shell pool)');
  }
  return language;
}

async function execute(ctx: E2bContext, r: E2bRequest, live: LiveSandbox): Promise<void> {
  const body = parseOrRefuse(ExecuteBody, await readJsonObject(r.req, ctx.state.maxJsonBytes));
  const { code, context_id: contextId, language: languageName, env_vars: env } = body;
  if (contextId && languageName) throw badArgument('Only one of context_id or language can be provided');
  let language: Language = 'python';
  if (contextId) {
    const context = contexts(live).find((c) => c.id === contextId);
    if (context === undefined) throw notFound(`Context ${contextId.slice(0, 128)} not found`);
    language = languageOf(context.language);
  } else if (languageName) {
    language = languageOf(languageName);
  } else if (live.pool.options.containerType === 'NodeLTS') {
    language = 'javascript';
  }
  requireLanguage(live, language);

  live.sandbox.executions += 1;
  const out = new LineWriter(r.res);
  const relay = new OutputRelay(out);
  out.write({ type: 'number_of_executions', execution_count: live.sandbox.executions });
  // Proxies between the SDK and the server drop a silent response; the SDK ignores these lines.
  const keepalive = setInterval(() => out.write({ type: 'keepalive' }), KEEPALIVE_MS);
  keepalive.unref();
  try {
    // A client that goes away interrupts the cell (as E2B's server does); the session stays.
    const result = await live.session.execute({
      code,
      language,
      signal: r.signal,
      onOutput: relay.onOutput,
      ...(env === undefined || env === null ? {} : { env }),
    });
    relay.finish(result, language);
    out.write({ type: 'end_of_execution' });
  } catch (error) {
    // The response has started: the failure travels as an error line (the session was lost, or
    // too many executions are queued on it).
    relay.abandon();
    const failure = toE2bError(error);
    out.write({
      type: 'error',
      name: failure.status === 429 ? 'SessionBusyError' : 'SandboxError',
      value: failure.message,
      traceback: '',
    });
    out.write({ type: 'unexpected_end_of_execution' });
  } finally {
    clearInterval(keepalive);
    out.end();
  }
}

/** Requests to port 49999. `path` is the request path after `/e2b`. */
export function matchInterpreter(
  method: string,
  path: string,
): { operation: string; handle: (ctx: E2bContext, r: E2bRequest, live: LiveSandbox) => Promise<void> | void } | undefined {
  const seg = path.split('/').filter(Boolean);
  if (seg.length === 1 && seg[0] === 'execute' && method === 'POST')
    return { operation: 'e2b.interpreter.execute', handle: execute };
  if (seg.length === 1 && seg[0] === 'health' && method === 'GET') {
    return { operation: 'e2b.interpreter.health', handle: (_c, r) => sendText(r.res, 200, '"OK"', 'application/json') };
  }
  if (seg[0] !== 'contexts') return undefined;
  if (seg.length === 1 && method === 'GET') {
    return { operation: 'e2b.interpreter.contexts', handle: (_c, r, live) => sendJson(r.res, 200, contexts(live)) };
  }
  if ((seg.length === 1 && method === 'POST') || seg.length === 2 || seg.length === 3) {
    return {
      operation: 'e2b.interpreter.contexts',
      handle: () => {
        // Every context of a sandpool session shares its one kernel per language, so new,
        // restarted or removed contexts cannot have the isolation E2B promises.
        throw unsupported('creating, restarting or removing code contexts');
      },
    };
  }
  return undefined;
}
