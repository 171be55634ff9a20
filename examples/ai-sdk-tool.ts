// A Vercel AI SDK tool (`tool()` from "ai") that runs the model's code in a sandpool session.
// The tool streams: while the code runs it yields preliminary results (output so far), and its
// last yield is the final one the model sees. One session per conversation keeps state between calls.
//
// Run: npx tsx examples/ai-sdk-tool.ts
// It uses a stub model (no network, no API key) that asks for the tool twice and then answers. With a
// real model, replace `stubModel()` with e.g. `openai('gpt-5')` from "@ai-sdk/openai". For Python,
// use `new ContainerBackend()` from "sandpool/backends/container" and `containerType: 'PythonLTS'`.
import { generateText, stepCountIs, tool } from 'ai';
import { MockLanguageModelV4 } from 'ai/test';
import { SessionPool } from 'sandpool';
import { QuickJSBackend } from 'sandpool/backends/quickjs';
import { z } from 'zod';

/** What the model gets back from one run. */
interface RunResult {
  readonly status: 'running' | 'Succeeded' | 'Failed';
  readonly stdout: string;
  readonly stderr: string;
  readonly result?: unknown;
}

/** A code tool on `pool`; every call of one conversation (`identifier`) reaches the same session. */
export function sandboxTool(pool: SessionPool, identifier: string) {
  return tool({
    description:
      'Run JavaScript in a sandbox that keeps its variables between calls. Returns stdout, stderr and the value of the last expression.',
    inputSchema: z.object({ code: z.string().describe('JavaScript; the last expression is returned') }),
    async *execute({ code }, { abortSignal }): AsyncGenerator<RunResult> {
      const session = await pool.acquire(identifier, { signal: abortSignal });
      let stdout = '';
      let stderr = '';
      for await (const event of session.executeStream({ code, timeoutInSeconds: 30 }, { signal: abortSignal })) {
        if (event.type === 'stdout') stdout += event.text;
        if (event.type === 'stderr') stderr += event.text;
        if (event.type === 'stdout' || event.type === 'stderr') yield { status: 'running', stdout, stderr };
        if (event.type === 'end')
          yield { status: event.status, stdout: event.stdout, stderr: event.stderr, result: event.result };
      }
    },
  });
}

/** A scripted model: defines a variable, then uses it, then reports the tool's final answer. */
function stubModel(): MockLanguageModelV4 {
  const usage = {
    inputTokens: { total: 10, noCache: 10, cacheRead: 0, cacheWrite: 0 },
    outputTokens: { total: 5, text: 5, reasoning: 0 },
  };
  const script = ['var x = 41; console.log("x is set")', 'console.log("adding"); x + 1'];
  let calls = 0;
  return new MockLanguageModelV4({
    doGenerate: async ({ prompt }) => {
      const step = calls++;
      if (step < script.length) {
        return {
          content: [
            { type: 'tool-call', toolCallId: `call-${step}`, toolName: 'runCode', input: JSON.stringify({ code: script[step] }) },
          ],
          finishReason: { unified: 'tool-calls', raw: 'tool_calls' },
          usage,
          warnings: [],
        };
      }
      // The last tool result in the conversation, as the real model would read it.
      const toolMessage = prompt.filter((m) => m.role === 'tool').at(-1);
      const part = toolMessage?.role === 'tool' ? toolMessage.content.find((c) => c.type === 'tool-result') : undefined;
      const output =
        part?.type === 'tool-result' && part.output.type === 'json' ? (part.output.value as unknown as RunResult) : undefined;
      return {
        content: [{ type: 'text', text: `The sandbox computed ${JSON.stringify(output?.result)}.` }],
        finishReason: { unified: 'stop', raw: 'stop' },
        usage,
        warnings: [],
      };
    },
  });
}

await using pool = new SessionPool({ backend: new QuickJSBackend(), containerType: 'NodeLTS', readySessionInstances: 2 });
await pool.start();

const result = await generateText({
  model: stubModel(),
  tools: { runCode: sandboxTool(pool, SessionPool.generateIdentifier()) },
  stopWhen: stepCountIs(5),
  prompt: 'What is 41 + 1? Use the sandbox.',
});
for (const step of result.steps) {
  for (const r of step.toolResults) console.log('tool result:', JSON.stringify(r.output));
}
console.log('answer:', result.text);
