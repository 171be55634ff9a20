// An OpenAI Agents JS function tool (`tool()` from "@openai/agents") that runs the agent's code in a
// sandpool session: one warm session per conversation, claimed with its own environment variables.
//
// Run: npx tsx examples/openai-agents-tool.ts
// It uses a stub model (no network, no API key): it calls the tool twice, then answers. With a real
// model, drop `model: new StubModel()` (the SDK then uses OpenAI with OPENAI_API_KEY). For Python,
// use `new ContainerBackend()` from "sandpool/backends/container" and `containerType: 'PythonLTS'`.
import {
  Agent,
  type Model,
  type ModelRequest,
  type ModelResponse,
  run,
  setTracingDisabled,
  type StreamEvent,
  tool,
  Usage,
} from '@openai/agents';
import { SessionPool } from 'sandpool';
import { QuickJSBackend } from 'sandpool/backends/quickjs';
import { z } from 'zod';

/** A code tool on `pool` for one conversation (`identifier`); `env` is bound when its session is claimed. */
export function sandboxTool(pool: SessionPool, identifier: string, env: Record<string, string> = {}) {
  return tool({
    name: 'run_code',
    description:
      'Run JavaScript in a sandbox that keeps its variables between calls. `env` holds the conversation’s variables. Returns stdout, stderr and the last value.',
    parameters: z.object({ code: z.string().describe('JavaScript; the last expression is returned') }),
    async execute({ code }) {
      const session = await pool.acquire(identifier, { env });
      const r = await session.execute({
        code,
        timeoutInSeconds: 30,
        // Output as it happens (a real app would forward it to its UI).
        onOutput: (chunk) => {
          if (chunk.type !== 'display') process.stdout.write(`  [sandbox ${chunk.type}] ${chunk.text}`);
        },
      });
      return JSON.stringify({ status: r.status, stdout: r.stdout, stderr: r.stderr, result: r.result });
    },
  });
}

/** A scripted model: two tool calls, then an answer quoting the last tool output. */
class StubModel implements Model {
  #calls = 0;
  readonly #script = ['var greeting = "hello " + env.USER_NAME; console.log(greeting)', 'greeting.length'];

  async getResponse(request: ModelRequest): Promise<ModelResponse> {
    const step = this.#calls++;
    const usage = new Usage({ requests: 1, inputTokens: 10, outputTokens: 5, totalTokens: 15 });
    if (step < this.#script.length) {
      const args = JSON.stringify({ code: this.#script[step] });
      return {
        usage,
        output: [{ type: 'function_call', callId: `call-${step}`, name: 'run_code', arguments: args, status: 'completed' }],
      };
    }
    const items = Array.isArray(request.input) ? request.input : [];
    const last = items.filter((i) => i.type === 'function_call_result').at(-1);
    const output = last?.type === 'function_call_result' ? last.output : undefined;
    const text = typeof output === 'string' ? output : output !== undefined && 'text' in output ? output.text : '';
    return {
      usage,
      output: [
        {
          type: 'message',
          role: 'assistant',
          status: 'completed',
          content: [{ type: 'output_text', text: `The tool said: ${text}` }],
        },
      ],
    };
  }

  // biome-ignore lint/correctness/useYield: the stub never streams
  async *getStreamedResponse(): AsyncIterable<StreamEvent> {
    throw new Error('the stub model does not stream');
  }
}

setTracingDisabled(true); // no trace export: this example never touches the network

await using pool = new SessionPool({ backend: new QuickJSBackend(), containerType: 'NodeLTS', readySessionInstances: 2 });
await pool.start();

const agent = new Agent({
  name: 'Calculator',
  instructions: 'Use run_code for anything that needs computing.',
  model: new StubModel(),
  tools: [sandboxTool(pool, SessionPool.generateIdentifier(), { USER_NAME: 'Ada' })],
});
const result = await run(agent, 'Greet the user and count the letters.');
console.log('answer:', result.finalOutput);
