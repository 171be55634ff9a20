/**
 * `sandpool/mcp`: sandpool's MCP tools (run_code, run_shell, write_file, read_file, list_files,
 * reset_session) on an `McpServer` of `@modelcontextprotocol/sdk`, for any transport. The CLI's
 * `sandpool mcp` (stdio) and the server's `/mcp` (Streamable HTTP) are built on it.
 *
 * @example
 * const mcp = new SandpoolMcpSession(localSessions(pool));
 * await mcp.server.connect(new StdioServerTransport());
 * // …
 * await mcp.close(); // releases the connection's sandbox
 */

export { MCP_SERVER_VERSION, SandpoolMcpSession } from './mcp-session.js';
export type { McpSessionOptions } from './mcp-session.js';
export { MAX_READ_BYTES, executionContent, localSessions, registerSandpoolTools } from './tools.js';
export type { McpSessionSource, ToolSessions } from './tools.js';
