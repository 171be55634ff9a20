/**
 * The member wire's authentication and error transport, without any network: a signature covers
 * method, path and query, node id and time; a tampered, replayed-late or forged request is refused;
 * typed errors cross as code and message only.
 */

import { describe, expect, it } from 'vitest';

import { fromWireError, signRequest, toWireError, verifyRequest } from '../../src/cluster/peer-wire.js';
import { ClusterUnavailableError, FileError, SandpoolError, SessionBusyError } from '../../src/errors.js';

const SECRET = 'unit-test-cluster-secret-0123456789abcdef';
const PATH = '/.cluster/v1/pools/js/session/execute?identifier=user-1&epoch=42';

describe('member wire', () => {
  it('accepts its own signature and names the member', () => {
    const header = signRequest(SECRET, 'node-a', 'POST', PATH);
    expect(verifyRequest(SECRET, header, 'POST', PATH)).toBe('node-a');
  });

  it('refuses another secret, another path, another method, another member and a stale time', () => {
    const now = Date.now();
    const header = signRequest(SECRET, 'node-a', 'POST', PATH, now);
    expect(verifyRequest(`${SECRET}x`, header, 'POST', PATH, now)).toBeUndefined();
    expect(verifyRequest(SECRET, header, 'POST', PATH.replace('epoch=42', 'epoch=43'), now)).toBeUndefined();
    expect(verifyRequest(SECRET, header, 'GET', PATH, now)).toBeUndefined();
    expect(verifyRequest(SECRET, header.replace('member=node-a', 'member=node-b'), 'POST', PATH, now)).toBeUndefined();
    expect(verifyRequest(SECRET, header, 'POST', PATH, now + 61_000)).toBeUndefined();
    expect(verifyRequest(SECRET, undefined, 'POST', PATH, now)).toBeUndefined();
    expect(verifyRequest(SECRET, 'v1 member=node-a at=1 sig=short', 'POST', PATH, now)).toBeUndefined();
  });

  it('carries typed errors as code, message and reason, nothing else', () => {
    const cause = new Error('secret path /var/lib/x');
    const wire = toWireError(new ClusterUnavailableError('owner gone', { details: { reason: 'owner', other: 'x' }, cause }));
    expect(wire).toEqual({ code: 'SANDPOOL_CLUSTER_UNAVAILABLE', message: 'owner gone', details: { reason: 'owner' } });
    expect(fromWireError(wire)).toBeInstanceOf(ClusterUnavailableError);
    expect(fromWireError(toWireError(new SessionBusyError('busy')))).toBeInstanceOf(SessionBusyError);
    const file = fromWireError(toWireError(new FileError('SANDPOOL_FILE_NOT_FOUND', 'no such file')));
    expect(file).toBeInstanceOf(FileError);
    expect(file.code).toBe('SANDPOOL_FILE_NOT_FOUND');
    // Anything that is not a sandpool error leaves without its text.
    expect(toWireError(new Error('internal detail'))).toEqual({
      code: 'SANDPOOL_BACKEND_FAILED',
      message: 'the owning member failed the request',
    });
    const unknown = fromWireError({ code: 'SOMETHING_ELSE', message: 'm' });
    expect(SandpoolError.is(unknown)).toBe(true);
    expect(unknown.code).toBe('SANDPOOL_BACKEND_FAILED');
  });
});
