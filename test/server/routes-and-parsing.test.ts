import { describe, expect, test } from 'vitest';

import { ErrorCode, PoolExhaustedError, SessionNotFoundError, FileError, InvalidIdentifierError } from '../../src/errors.js';
import { ERROR_STATUS, toErrorResponse } from '../../src/server/http-errors.js';
import { dataPath, parseExecuteBody } from '../../src/server/request-body.js';
import { matchRoute } from '../../src/server/routes.js';

const plain = (): boolean => false;

describe('route table', () => {
  test.each([
    ['POST', '/pools/p/code/execute', 'gen1.execute', undefined],
    ['POST', '/pools/p//code/execute', 'gen1.execute', undefined],
    ['POST', '/pools/p/code/execute/', 'gen1.execute', undefined],
    ['POST', '/pools/p/execute', 'gen1.execute', undefined],
    ['POST', '/pools/p/python/execute', 'gen0.execute', undefined],
    ['POST', '/pools/p/python/uploadFile', 'gen0.upload', undefined],
    ['GET', '/pools/p/python/files', 'gen0.listFiles', undefined],
    ['GET', '/pools/p/python/downloadFile', 'gen0.download', undefined],
    ['POST', '/pools/p/executions', 'gen2.execute', undefined],
    ['GET', '/pools/p/executions/abc', 'gen2.getExecution', 'abc'],
    ['POST', '/pools/p/files/upload', 'gen1.upload', undefined],
    ['POST', '/pools/p/files', 'gen2.upload', undefined],
    ['GET', '/pools/p//files', 'files.list', undefined],
    ['GET', '/pools/p/files/content/a.txt', 'gen1.download', 'a.txt'],
    ['GET', '/pools/p/files/content/dir/a.txt', 'gen1.download', 'dir/a.txt'],
    ['GET', '/pools/p/files/a.txt/content', 'gen2.download', 'a.txt'],
    ['GET', '/pools/p/files/dir/a%20b.txt/content', 'gen2.download', 'dir/a b.txt'],
    ['GET', '/pools/p/files/a.txt', 'files.get', 'a.txt'],
    ['DELETE', '/pools/p/files/dir/a.txt', 'files.delete', 'dir/a.txt'],
    ['GET', '/pools/p/session', 'session.get', undefined],
    ['DELETE', '/pools/p/session', 'session.delete', undefined],
    ['GET', '/pools/p/listSessions', 'sessions.list', undefined],
    ['GET', '/pools/p/metadata', 'metadata', undefined],
    ['POST', '/pools/p/.management/getSession', 'management.getSession', undefined],
    ['POST', '/pools/p/.management/listSessions', 'management.listSessions', undefined],
    ['POST', '/pools/p/.management/stopSession', 'management.stopSession', undefined],
    ['PUT', '/pools/p', 'pool.put', undefined],
    ['PATCH', '/pools/p/', 'pool.patch', undefined],
  ])('%s %s → %s', (method, path, operation, param) => {
    const match = matchRoute(method, path, plain);
    expect(match?.operation).toBe(operation);
    expect(match?.pool).toBe('p');
    expect(match?.param).toBe(param);
  });

  test('Azure-shaped prefixes route on the suffix', () => {
    const azure = '/subscriptions/0000-1111/resourceGroups/rg-1/sessionPools/mypool/code/execute';
    expect(matchRoute('POST', azure, plain)).toEqual({ operation: 'gen1.execute', pool: 'mypool' });
    const arm = '/subscriptions/s/resourceGroups/rg/providers/Microsoft.App/sessionPools/mypool//executions';
    expect(matchRoute('POST', arm, plain)).toEqual({ operation: 'gen2.execute', pool: 'mypool' });
  });

  test('custom-container pools forward everything but .management', () => {
    const custom = (name: string): boolean => name === 'cc';
    expect(matchRoute('POST', '/pools/cc/api/upload%20it', custom)).toEqual({
      operation: 'forward',
      pool: 'cc',
      forwardPath: '/api/upload%20it',
    });
    expect(matchRoute('POST', '/pools/cc/.management/stopSession', custom)?.operation).toBe('management.stopSession');
    expect(matchRoute('GET', '/pools/cc', custom)?.operation).toBe('pool.get');
  });

  test('unknown routes and methods do not match', () => {
    expect(matchRoute('GET', '/pools/p/code/execute', plain)).toBeUndefined();
    expect(matchRoute('POST', '/pools/p/nothing', plain)).toBeUndefined();
    expect(matchRoute('GET', '/elsewhere', plain)).toBeUndefined();
    expect(() => matchRoute('GET', '/pools/p/files/%E0%A4%A', plain)).toThrow(/percent-encoding/);
  });
});

describe('execute body parsing', () => {
  test('wrapped and flat bodies, code and pythonCode, any enum case', () => {
    const wrapped = parseExecuteBody({
      properties: { codeInputType: 'inline', executionType: 'synchronous', pythonCode: 'x', identifier: 'abcd' },
    });
    expect(wrapped).toMatchObject({ code: 'x', identifier: 'abcd', executionType: 'Synchronous' });
    const flat = parseExecuteBody({ codeInputType: 'INLINE', executionType: 'Asynchronous', code: 'y', timeoutInSeconds: 60 });
    expect(flat).toMatchObject({ code: 'y', executionType: 'Asynchronous', timeoutInSeconds: 60 });
    expect(parseExecuteBody({ codeInputType: 'InlineBase64', code: Buffer.from('1+1').toString('base64') }).code).toBe('1+1');
    expect(parseExecuteBody({ shellCommand: 'ls' })).toMatchObject({ shellCommand: 'ls', code: undefined });
    expect(parseExecuteBody({ execCommandAndArgs: ['ls', '-a'], stdin: 'x' })).toMatchObject({
      execCommandAndArgs: ['ls', '-a'],
      stdin: 'x',
    });
  });

  test('what is actually wrong is refused with a reason', () => {
    expect(() => parseExecuteBody({ properties: 'x' })).toThrow(/properties must be an object/);
    expect(() => parseExecuteBody({ codeInputType: 'file', code: 'x' })).toThrow(/codeInputType/);
    expect(() => parseExecuteBody({ executionType: 'later', code: 'x' })).toThrow(/executionType/);
    expect(() => parseExecuteBody({ code: 42 })).toThrow(/code must be a string/);
    expect(() => parseExecuteBody({ code: 'x', timeoutInSeconds: -1 })).toThrow(/timeoutInSeconds/);
    expect(() => parseExecuteBody({ execCommandAndArgs: [] })).toThrow(/execCommandAndArgs/);
    expect(() => parseExecuteBody({ shellCommand: 'a', execCommandAndArgs: ['b'] })).toThrow(/either/);
  });

  test('file names: /mnt/data prefixes are removed, directories joined', () => {
    expect(dataPath('/mnt/data/test1.txt')).toBe('test1.txt');
    expect(dataPath('test1.txt', '/mnt/data')).toBe('test1.txt');
    expect(dataPath('x.txt', 'sub/dir/')).toBe('sub/dir/x.txt');
    expect(dataPath('/etc/passwd')).toBe('/etc/passwd'); // left for the pool to refuse
  });
});

describe('error envelope', () => {
  test('every library error code has a status', () => {
    for (const code of Object.values(ErrorCode)) expect(ERROR_STATUS[code].status).toBeGreaterThanOrEqual(400);
  });

  test('Azure codes, statuses and Retry-After', () => {
    const notFound = toErrorResponse(new SessionNotFoundError('gone'), 'rid');
    expect(notFound.status).toBe(400);
    expect(notFound.body.error.code).toBe('SessionWithIdentifierNotFound');
    expect(notFound.headers['x-ms-error-code']).toBe('SessionWithIdentifierNotFound');
    const exhausted = toErrorResponse(new PoolExhaustedError('full'), 'rid');
    expect(exhausted.status).toBe(429);
    expect(Number(exhausted.headers['retry-after'])).toBeGreaterThan(0);
    expect(toErrorResponse(new FileError(ErrorCode.FILE_TOO_LARGE, 'big'), 'rid').status).toBe(413);
    expect(toErrorResponse(new InvalidIdentifierError('bad'), 'rid').body.error.code).toBe('SessionRequestValidationFailed');
    const unknown = toErrorResponse(new Error('secret path /var/x'), 'rid');
    expect(unknown.status).toBe(500);
    expect(JSON.stringify(unknown.body)).not.toContain('/var/x');
  });
});
