/**
 * The agent-toolkit examples run as a user would run them (tsx, against the built package): the
 * real Vercel AI SDK (`ai`) and OpenAI Agents JS (`@openai/agents`) drive a sandpool tool through
 * their own tool loops, with a stub model (no network). Each exits by itself after closing its pool.
 */
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';

import { describe, expect, it } from 'vitest';

const run = promisify(execFile);
const root = join(import.meta.dirname, '..', '..');
const tsx = join(root, 'node_modules', '.bin', 'tsx');
// No route to the network: the examples must not need one.
const env = { ...process.env, OPENAI_API_KEY: '', HTTPS_PROXY: 'http://127.0.0.1:9', HTTP_PROXY: 'http://127.0.0.1:9' };

describe('agent toolkit examples', () => {
  it('ai-sdk-tool: the AI SDK calls the sandbox tool twice, state kept, and answers with its result', async () => {
    const { stdout } = await run(tsx, [join(root, 'examples', 'ai-sdk-tool.ts')], { cwd: root, env, timeout: 60_000 });
    expect(stdout).toContain('tool result: {"status":"Succeeded","stdout":"x is set\\n","stderr":"","result":""}');
    expect(stdout).toContain('tool result: {"status":"Succeeded","stdout":"adding\\n","stderr":"","result":42}');
    expect(stdout).toContain('answer: The sandbox computed 42.');
  });

  it('openai-agents-tool: the agent runs code with its bound env, streams output, and answers', async () => {
    const { stdout } = await run(tsx, [join(root, 'examples', 'openai-agents-tool.ts')], { cwd: root, env, timeout: 60_000 });
    expect(stdout).toContain('[sandbox stdout] hello Ada');
    expect(stdout).toContain('answer: The tool said: {"status":"Succeeded","stdout":"","stderr":"","result":9}');
  });
});
