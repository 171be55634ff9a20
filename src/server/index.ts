/**
 * `sandpool/server`: an HTTP server wire-compatible with Azure Container Apps dynamic sessions,
 * over SessionPools. See docs/SERVER.md.
 */

export { createServer, isLoopback } from './create-server.js';
export type { CreateServerOptions, ListenOptions, SandpoolServer } from './create-server.js';
export {
  Authenticator,
  createApiKey,
  parseRole,
  requireRole,
  sha256Hex,
  DEFAULT_AUDIENCE,
  LEGACY_AUDIENCE,
  ROLES,
} from './auth.js';
export type { AuthOptions, JwtAuthOptions, Principal, Role, StoredApiKey } from './auth.js';
export { ERROR_STATUS, HttpError, toErrorResponse } from './http-errors.js';
export type { HttpErrorMapping } from './http-errors.js';
export { jsonLinesLogger, silentLogger } from './logging.js';
export type { AuditRecord, LogLevel, LogRecord, Logger } from './logging.js';
export type { BackendFactory, PoolDefinition } from './pool-registry.js';
export { matchRoute } from './routes.js';
export type { Operation, RouteMatch } from './routes.js';
