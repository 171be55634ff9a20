/** Maps the agent's error codes (agent/PROTOCOL.md, "Errors") onto sandpool's typed errors. */

import {
  BackendError,
  ErrorCode,
  FileError,
  InvalidRequestError,
  SandpoolError,
  SessionBusyError,
  UnsupportedError,
} from '../../../src/errors.js';

export function agentError(code: string, message: string, context: string): SandpoolError {
  const text = `${context}: ${message}`;
  const details = { agentCode: code };
  switch (code) {
    case 'FILE_NOT_FOUND':
      return new FileError(ErrorCode.FILE_NOT_FOUND, text, { details });
    case 'INVALID_PATH':
      return new FileError(ErrorCode.INVALID_PATH, text, { details });
    case 'FILE_TOO_LARGE':
      return new FileError(ErrorCode.FILE_TOO_LARGE, text, { details });
    case 'NO_SPACE':
      return new SandpoolError(ErrorCode.RESOURCE_LIMIT, text, { details });
    case 'UNSUPPORTED':
      return new UnsupportedError(text, { details });
    case 'BUSY':
      return new SessionBusyError(text, { details });
    case 'BAD_REQUEST':
      return new InvalidRequestError(text, { details });
    default:
      return new BackendError(text, { details });
  }
}
