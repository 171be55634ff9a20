/**
 * The Engine API client must never follow a redirect. docker-modem (dockerode's transport) follows
 * up to 5 by default, to whatever host and port the `Location` header names, over TCP, on a request
 * of its own that has no 'error' listener: an engine that redirects (Podman answers a path with
 * `..` segments with a 301) would send the call to a host taken from an image name, and a failed
 * lookup there would end the process with an unhandled 'error' event.
 *
 * docker-modem reads its limit per request from `module.exports.maxRedirects` of its http module
 * and offers no per-client option, so the limit is set to 0 on the copy dockerode itself loads.
 * A redirect then fails the original request (an ordinary rejected engine call) and nothing else
 * is sent. test/container/engine-redirects.test.ts proves it against a redirecting fake engine.
 */

import { createRequire } from 'node:module';

let applied = false;

/** Idempotent; called before the first engine connection is made. */
export function refuseEngineRedirects(): void {
  if (applied) return;
  const fromHere = createRequire(import.meta.url);
  // Resolve docker-modem from dockerode's own location: the copy dockerode actually uses.
  const fromDockerode = createRequire(fromHere.resolve('dockerode'));
  const modemHttp = fromDockerode('docker-modem/lib/http.js') as { maxRedirects?: number };
  if (typeof modemHttp.maxRedirects !== 'number') {
    throw new Error('docker-modem no longer exposes maxRedirects: check that redirects are still refused');
  }
  modemHttp.maxRedirects = 0;
  applied = true;
}

/** An engine call's failure as a message: a refused redirect is named as such. */
export function engineErrorMessage(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  return /max redirects exceeded/i.test(message)
    ? 'the container engine answered with a redirect, which sandpool never follows'
    : message;
}
