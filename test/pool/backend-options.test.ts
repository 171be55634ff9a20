/**
 * Every backend validates its options with its own zod schema (exported beside the class) and
 * takes its diagnostics through the same hook, `onLog`; a bad option is an InvalidOptionsError
 * naming it, at construction, before anything is started.
 */

import { describe, expect, it } from 'vitest';

import { ContainerBackend, ContainerBackendOptionsSchema } from '../../backends/container/index.js';
import { IsolatedVMBackend, IsolatedVMBackendOptionsSchema } from '../../backends/isolated-vm/index.js';
import { QuickJSBackend, QuickJSBackendOptionsSchema } from '../../backends/quickjs/index.js';
import { VMBackend, VMBackendOptionsSchema } from '../../backends/vm/index.js';
import { type Backend, InvalidOptionsError } from '../../src/index.js';

type Make = (options: Record<string, unknown>) => Backend;

const backends: ReadonlyArray<{ name: string; make: Make; schema: { shape: object }; wrong: Record<string, unknown> }> = [
  { name: 'quickjs', make: (o) => new QuickJSBackend(o), schema: QuickJSBackendOptionsSchema, wrong: { maxSyntaxDepth: 'deep' } },
  {
    name: 'isolated-vm',
    make: (o) => new IsolatedVMBackend(o),
    schema: IsolatedVMBackendOptionsSchema,
    wrong: { modulePath: '' },
  },
  { name: 'container', make: (o) => new ContainerBackend(o), schema: ContainerBackendOptionsSchema, wrong: { nofile: 1 } },
  { name: 'vm', make: (o) => new VMBackend(o), schema: VMBackendOptionsSchema, wrong: { accelerator: 'warp' } },
];

describe('backend options', () => {
  it.each(backends)('$name: refuses an unknown option and a wrong value, naming them', ({ make, wrong }) => {
    expect(() => make({ noSuchOption: true })).toThrow(InvalidOptionsError);
    expect(() => make({ noSuchOption: true })).toThrow(/noSuchOption/);
    const [key] = Object.keys(wrong);
    expect(() => make(wrong)).toThrow(InvalidOptionsError);
    expect(() => make(wrong)).toThrow(new RegExp(key!));
  });

  it('the backends that report diagnostics all take them as onLog, a function', async () => {
    for (const { make } of backends.filter((b) => 'onLog' in b.schema.shape)) {
      expect(() => make({ onLog: 'stderr' })).toThrow(/onLog/);
      const backend = make({ onLog: () => undefined });
      await backend.close();
    }
    expect(backends.filter((b) => 'onLog' in b.schema.shape).map((b) => b.name)).toEqual(['container', 'vm']);
    expect(backends.some((b) => 'log' in b.schema.shape)).toBe(false);
  });
});
