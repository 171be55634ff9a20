/**
 * Image references are checked against the OCI/Docker reference grammar before anything reaches a
 * container engine (the Engine API puts them into a URL path unescaped): by the pool's options, the
 * container backend's options, and the backend itself for direct callers.
 */

import { describe, expect, it } from 'vitest';

import { ContainerBackend } from '../../backends/container/index.js';
import { InvalidOptionsError, type SandpoolError, SessionPool } from '../../src/index.js';
import { imageReferenceProblem, parseImageReference } from '../../src/image-reference.js';

const DIGEST = `sha256:${'a1'.repeat(32)}`;

describe('image reference grammar', () => {
  it.each([
    ['alpine', { domain: undefined, path: 'alpine', tag: undefined }],
    ['alpine:3.19', { path: 'alpine', tag: '3.19' }],
    ['library/alpine', { domain: undefined, path: 'library/alpine' }],
    ['docker.io/library/alpine:3', { domain: 'docker.io', path: 'library/alpine', tag: '3' }],
    ['localhost/sandpool/code-interpreter:wt-security', { domain: 'localhost', path: 'sandpool/code-interpreter' }],
    ['localhost:5000/team/app', { domain: 'localhost:5000', path: 'team/app' }],
    ['10.1.2.3:5000/app:v1', { domain: '10.1.2.3:5000', path: 'app', tag: 'v1' }],
    ['[::1]:5000/app:v1', { domain: '[::1]:5000', path: 'app' }],
    ['Registry.Example/app', { domain: 'Registry.Example', path: 'app' }],
    ['registry.example.com/a_b__c-d---e.f/x:TAG_1.2-3', { path: 'a_b__c-d---e.f/x', tag: 'TAG_1.2-3' }],
    [`ghcr.io/o/r@${DIGEST}`, { path: 'o/r', digest: DIGEST }],
    [`ghcr.io/o/r:1@${DIGEST}`, { tag: '1', digest: DIGEST }],
  ])('accepts %s', (reference, expected) => {
    expect(imageReferenceProblem(reference)).toBeUndefined();
    expect(parseImageReference(reference)).toMatchObject(expected);
  });

  it.each([
    ['', /empty/],
    ['localhost/../x', /path component "\.\."/],
    ['../../evil.example:80/x', /"\.\."/],
    ['a/./b', /path component "\."/],
    ['a/..', /path component "\.\."/],
    ['a//b', /empty path component/],
    ['/a', /empty path component/],
    ['a/', /empty path component/],
    ['Alpine', /path component "Alpine"/],
    ['a/B', /path component "B"/],
    ['a?x=1', /contains "\?"/],
    ['a#frag', /contains "#"/],
    ['a%2e%2e/x', /contains "%"/],
    ['a b', /contains " "/],
    ['a\nb', /contains "\\n"/],
    ['imäge', /contains "ä"/],
    ['a:b:c', /path component "a:b"/],
    ['a:-x', /tag "-x"/],
    [`a:${'t'.repeat(129)}`, /tag/],
    ['a@sha256:abc', /digest/],
    ['a@md5', /digest/],
    ['evil.example:99999/x', /port "99999"/],
    ['evil.example:x/y', /invalid port/],
    ['-bad.example/x', /registry host "-bad.example"/],
    ['[zz]:5000/x', /bracketed IPv6/],
    ['a__-b', /path component/],
    [`${'a'.repeat(256)}`, /longer than 255/],
  ])('refuses %j', (reference, problem) => {
    expect(imageReferenceProblem(reference)).toMatch(problem);
    expect(() => parseImageReference(reference)).toThrow(TypeError);
  });
});

describe('where image references are checked', () => {
  const template = (image: string) => ({ image, targetPort: 8080 });

  it('a CustomContainer pool refuses a bad image with an error naming the field and the problem', () => {
    let failure: unknown;
    try {
      new SessionPool({
        backend: new ContainerBackend({ socketPath: '/nonexistent/engine.sock', startPodman: false }),
        containerType: 'CustomContainer',
        customContainerTemplate: template('localhost/../../evil.example:8080/x'),
      });
    } catch (error) {
      failure = error;
    }
    expect(failure).toBeInstanceOf(InvalidOptionsError);
    const issues = (failure as SandpoolError).details?.['issues'] as { path: unknown[]; message: string }[];
    expect(issues.map((i) => i.path.join('.'))).toContain('customContainerTemplate.image');
    expect(issues.find((i) => i.path.join('.') === 'customContainerTemplate.image')?.message).toMatch(
      /not a valid image reference: the path component "\.\." is not allowed/,
    );
  });

  it('the container backend refuses a bad code-interpreter image option', () => {
    expect(() => new ContainerBackend({ image: 'localhost/sandpool/../x' })).toThrow(InvalidOptionsError);
  });

  it('the container backend refuses a bad image from a direct caller before any engine call', async () => {
    // No engine socket exists at this path: the reference must be refused before a connection is tried.
    const backend = new ContainerBackend({ socketPath: '/nonexistent/engine.sock', startPodman: false });
    const failure = await backend
      .prepare({
        poolName: 'p',
        ownerId: 'o',
        containerType: 'CustomContainer',
        limits: {} as never,
        network: { egress: 'EgressDisabled', allow: [] },
        customContainer: { image: 'a/../b', env: [], targetPort: 80, probes: [] },
      })
      .then(
        () => undefined,
        (error: unknown) => error,
      );
    expect(failure).toBeInstanceOf(InvalidOptionsError);
    expect((failure as Error).message).toMatch(/invalid image reference "a\/\.\.\/b"/);
    await backend.close();
  });
});
