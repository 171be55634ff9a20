/** Host-side client of the in-sandbox agent, shared by the container and VM backends. */
export { AgentClient, type AgentClientOptions } from './agent-client.js';
export type { AgentReady } from './protocol.js';
export { agentCommand } from './agent-command.js';
export { checkpointToFile, restoreFromFile, type StateSocket } from './state-transfer.js';
