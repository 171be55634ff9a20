/**
 * JSON.parse for text from outside the process: request bodies on every route (the Azure data
 * plane, pool management, /mcp, E2B's Connect-RPC, cluster forwarding). Nesting is measured first,
 * without recursion, so no later recursive walk (a merge patch, validation, persisting) can overflow
 * the stack; a `__proto__` key is refused, since assigning it while copying or merging re-parents
 * the target object. Each wire layer turns `UntrustedJsonError` into its own error shape.
 */

/** Deepest nesting of objects and arrays accepted (Azure's bodies need 5, MCP's and E2B's fewer than 10). */
export const MAX_JSON_DEPTH = 64;

/** Why a text was refused; the message completes a sentence such as "the request body …". */
export class UntrustedJsonError extends Error {
  override readonly name = 'UntrustedJsonError';
}

export function parseUntrustedJsonText(text: string): unknown {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c)
        i++; // backslash: skip the escaped character
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) inString = true;
    else if (c === 0x7b || c === 0x5b) {
      if (++depth > MAX_JSON_DEPTH) throw new UntrustedJsonError(`is nested deeper than ${MAX_JSON_DEPTH} levels`);
    } else if (c === 0x7d || c === 0x5d) depth--;
  }
  let protoKey = false;
  let parsed: unknown;
  try {
    parsed = JSON.parse(text, (key, value: unknown) => {
      if (key === '__proto__') protoKey = true;
      return value;
    });
  } catch (error) {
    throw new UntrustedJsonError(`is not valid JSON: ${(error as Error).message}`);
  }
  if (protoKey) throw new UntrustedJsonError('has a "__proto__" key, which is not allowed');
  return parsed;
}
