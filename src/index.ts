/**
 * sandpool: pre-warmed, isolated code-execution sessions for Node.js. This entry point loads no
 * backend: import one from `sandpool/backends/<name>`.
 */

export { SessionPool } from './session-pool.js';
export type { AcquireOptions } from './session-pool.js';
export { Session } from './session.js';
export type { SessionApi } from './session.js';
export type {
  ExecuteOptions,
  ExecuteStreamOptions,
  ExecutionEvent,
  ExecutionResult,
  PoolStats,
  SessionInfo,
  SessionState,
} from './session-types.js';

export type {
  Backend,
  BackendCapabilities,
  BackendFiles,
  BackendLogEvent,
  BackendSession,
  Checkpoint,
  CheckpointOptions,
  CreateOptions,
  DestroyReason,
  BackendExecuteOptions,
  ExecuteRequest,
  ExecutionOutcome,
  OutputChunk,
  FileInfo,
  ImageOutput,
  IsolationLevel,
  Language,
  LostState,
  PauseLevel,
  PrepareContext,
  Restored,
  RestoreOptions,
  SessionExit,
  SessionSpec,
} from './backend.js';

export type * from './events.js';

export {
  AbortedError,
  BackendError,
  ClusterUnavailableError,
  ErrorCode,
  ExecutionTimeoutError,
  FileError,
  InvalidIdentifierError,
  InvalidOptionsError,
  InvalidRequestError,
  PoolClosedError,
  PoolExhaustedError,
  SandpoolError,
  SessionBusyError,
  SessionNotFoundError,
  UnsupportedError,
  toSandpoolError,
} from './errors.js';

export { IDENTIFIER_PATTERN, assertIdentifier, generateIdentifier, isValidIdentifier } from './identifier.js';
export { ENVIRONMENT_LIMITS, parseEnvironment } from './environment.js';
export type { Environment } from './environment.js';

export {
  CONTAINER_TYPES,
  ContainerTypeSchema,
  CustomContainerTemplateSchema,
  NetworkPolicySchema,
  SessionLimitsSchema,
  SessionPoolOptionsSchema,
  formatIssues,
  parseOrThrow,
  resolvePoolOptions,
} from './options.js';
export type {
  ContainerType,
  CustomContainerTemplate,
  CustomContainerTemplateInput,
  LifecycleType,
  NetworkPolicy,
  ResolvedPoolOptions,
  SessionLimits,
  SessionLimitsInput,
  SessionPoolOptions,
} from './options.js';
export { AzurePoolPropertiesSchema, azurePropertiesToOptions, optionsToAzureProperties } from './azure-properties.js';
export type { AzurePoolOverrides } from './azure-properties.js';
export { PoolUpdateSchema } from './pool/pool-update.js';
export type { PoolUpdate } from './pool/pool-update.js';
export { normaliseDataPath } from './pool/file-paths.js';
export { HostMemoryBudget, hostMemoryBudget } from './pool/host-budget.js';
export type { ByteSource } from './pool/byte-source.js';
export type { JsonPrimitive, JsonValue } from './types.js';
