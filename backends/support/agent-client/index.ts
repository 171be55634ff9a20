/** Host-side client of the in-sandbox agent, shared by the container and VM backends. */
export { AgentClient, type AgentClientOptions } from './agent-client.js';
export { PROTOCOL_VERSION, type AgentInfo, type AgentReady, type AgentRuntime } from './protocol.js';
export { agentCommand, agentDirectory, type AgentCommandOptions } from './agent-command.js';
export type { AgentStateReport } from './protocol.js';
export { checkpointToFile, restoreFromFile, type StateSocket, type StateTransferOptions } from './state-transfer.js';
