/** The /ui/ status page (filled in later); for now a placeholder that says so. */

import { sendText, type RequestContext } from './http-io.js';

export function createStatusPage(): (ctx: RequestContext) => void {
  return (ctx) => sendText(ctx.res, 200, '<!doctype html><title>sandpool</title><p>sandpool status page</p>', 'text/html; charset=utf-8');
}
