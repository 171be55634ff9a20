/** Capability checks of `prepare()`: the image is there (or pulled), the OCI runtime exists. */

import { existsSync } from 'node:fs';

import type Docker from 'dockerode';

import { AbortedError, BackendError, ErrorCode, InvalidOptionsError } from '../../src/errors.js';
import { imageReferenceProblem } from '../../src/image-reference.js';
import { engineErrorMessage } from './engine-redirects.js';

function isNotFound(error: unknown): boolean {
  return (error as { statusCode?: number }).statusCode === 404;
}

/**
 * Refuse a reference outside the OCI/Docker grammar before it reaches the engine: the Engine API
 * puts it into a URL path unescaped. Pools validate it too; this guards direct backend callers.
 */
export function assertImageReference(image: string): void {
  const problem = imageReferenceProblem(image);
  if (problem !== undefined) {
    throw new InvalidOptionsError(`invalid image reference ${JSON.stringify(image.slice(0, 300))}: ${problem}`);
  }
}

/** Make sure `image` is in the engine's store; pull it from its registry when allowed. */
export async function ensureImage(
  docker: Docker,
  image: string,
  options: { readonly pull: boolean; readonly log: (m: string) => void; readonly signal?: AbortSignal | undefined },
): Promise<void> {
  assertImageReference(image);
  try {
    await docker.getImage(image).inspect();
    return;
  } catch (error) {
    if (!isNotFound(error))
      throw new BackendError(`cannot inspect image ${image}: ${engineErrorMessage(error)}`, { cause: error });
  }
  if (!options.pull) {
    throw new BackendError(
      `image ${image} is missing from the container engine; build it with "npm run setup" (or pass the image option)`,
      { code: ErrorCode.BACKEND_UNAVAILABLE },
    );
  }
  options.log(`pulling image ${image}`);
  try {
    const stream = await docker.pull(image, options.signal === undefined ? {} : { abortSignal: options.signal });
    await new Promise<void>((resolve, reject) => {
      docker.modem.followProgress(
        stream,
        (error: Error | null, events: { error?: string; errorDetail?: { message?: string } }[]) => {
          const failed = events?.find((e) => e.error !== undefined || e.errorDetail !== undefined);
          if (error !== null) reject(error);
          else if (failed !== undefined) reject(new Error(failed.errorDetail?.message ?? failed.error));
          else resolve();
        },
      );
    });
    await docker.getImage(image).inspect();
  } catch (error) {
    if (options.signal?.aborted) throw new AbortedError('pulling the image was aborted');
    throw new BackendError(`image ${image} is not in the engine's store and pulling it failed: ${engineErrorMessage(error)}`, {
      code: ErrorCode.BACKEND_UNAVAILABLE,
      cause: error,
    });
  }
}

/** The runtime must be one the engine knows (Docker: daemon.json runtimes; Podman: containers.conf). */
export async function checkRuntime(docker: Docker, runtime: string | undefined, localEngine: boolean): Promise<void> {
  if (runtime === undefined) return;
  const info = (await docker.info()) as { Runtimes?: Record<string, { path?: string }>; DefaultRuntime?: string };
  const known = Object.keys(info.Runtimes ?? {});
  if (known.length > 0 && !known.includes(runtime)) {
    throw new BackendError(
      `OCI runtime "${runtime}" is not available in the container engine (it has: ${known.join(', ')}); ` +
        'install it and register it (Docker: daemon.json "runtimes"; Podman: containers.conf [engine.runtimes])',
      { code: ErrorCode.BACKEND_UNAVAILABLE },
    );
  }
  // Podman lists every runtime name it knows of, installed or not: check the binary when the
  // engine runs on this host.
  const path = info.Runtimes?.[runtime]?.path;
  if (localEngine && path?.startsWith('/') && !existsSync(path)) {
    throw new BackendError(`OCI runtime "${runtime}" is registered with the container engine but ${path} is not installed`, {
      code: ErrorCode.BACKEND_UNAVAILABLE,
    });
  }
}
