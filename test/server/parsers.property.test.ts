/**
 * Property tests (fast-check, fixed seeds) for the server's parsers of untrusted input: routes,
 * execute bodies and file names. Whatever arrives, they either return a well-formed value or throw
 * an HttpError / SandpoolError with a status — never anything else.
 */

import fc from 'fast-check';
import { describe, expect, test } from 'vitest';

import { SandpoolError } from '../../src/errors.js';
import { HttpError, toErrorResponse } from '../../src/server/http-errors.js';
import { dataPath, parseExecuteBody } from '../../src/server/request-body.js';
import { matchRoute } from '../../src/server/routes.js';

const expectedFailure = (error: unknown): boolean => error instanceof HttpError || SandpoolError.is(error);

describe('parsers of untrusted input', () => {
  test('matchRoute: any method and path → a route, undefined, or a 400 HttpError', () => {
    const segment = fc.oneof(
      fc.constantFrom(
        'pools',
        'p',
        'code',
        'execute',
        'files',
        'content',
        '.management',
        'executions',
        'python',
        'session',
        '',
        '%',
        '%zz',
        '%2F',
        '..',
        'subscriptions',
        'sessionPools',
      ),
      fc.string(),
    );
    fc.assert(
      fc.property(
        fc.constantFrom('GET', 'POST', 'PUT', 'PATCH', 'DELETE', 'HEAD', 'OPTIONS', 'weird'),
        fc.array(segment, { maxLength: 8 }),
        fc.boolean(),
        (method, segments, custom) => {
          const path = `/${segments.join('/')}`;
          try {
            const match = matchRoute(method, path, () => custom);
            if (match !== undefined) {
              expect(typeof match.operation).toBe('string');
              if (match.operation === 'forward') expect(match.forwardPath?.startsWith('/')).toBe(true);
            }
          } catch (error) {
            expect(error).toBeInstanceOf(HttpError);
            expect((error as HttpError).status).toBe(400);
          }
        },
      ),
      { seed: 20261122, numRuns: 3000 },
    );
  });

  test('parseExecuteBody: any JSON object → a normalised body or a 400', () => {
    const value = fc.oneof(
      fc.string(),
      fc.integer(),
      fc.double(),
      fc.boolean(),
      fc.constant(null),
      fc.array(fc.string(), { maxLength: 3 }),
      fc.dictionary(fc.string(), fc.string(), { maxKeys: 3 }),
    );
    const keys = fc.constantFrom(
      'code',
      'pythonCode',
      'codeInputType',
      'executionType',
      'timeoutInSeconds',
      'identifier',
      'shellCommand',
      'execCommandAndArgs',
      'stdin',
      'outputStreamsMaxLength',
      'other',
    );
    const flat = fc.dictionary(keys, value, { maxKeys: 6 });
    const body = fc.oneof(
      flat,
      flat.map((p) => ({ properties: p })),
      fc.record({ properties: value }),
    );
    fc.assert(
      fc.property(body, (input) => {
        try {
          const parsed = parseExecuteBody(input as Record<string, unknown>);
          expect(['Synchronous', 'Asynchronous']).toContain(parsed.executionType);
          if (parsed.code !== undefined) expect(typeof parsed.code).toBe('string');
          if (parsed.timeoutInSeconds !== undefined) expect(parsed.timeoutInSeconds).toBeGreaterThan(0);
          if (parsed.execCommandAndArgs !== undefined)
            expect(parsed.execCommandAndArgs.every((a) => typeof a === 'string')).toBe(true);
        } catch (error) {
          expect(expectedFailure(error)).toBe(true);
          expect(toErrorResponse(error, 'r').status).toBe(400);
        }
      }),
      { seed: 4242, numRuns: 3000 },
    );
  });

  test('dataPath: never invents a path outside what was given, and strips only /mnt/data', () => {
    fc.assert(
      fc.property(fc.string(), fc.option(fc.string(), { nil: undefined }), (name, dir) => {
        const out = dataPath(name, dir);
        expect(out.startsWith('/mnt/data/')).toBe(false);
        if (!name.startsWith('/') && (dir === undefined || dir === '')) expect(out).toBe(name);
      }),
      { seed: 7, numRuns: 3000 },
    );
  });
});
