/** How the control plane describes a sandbox: E2B's `Sandbox`, `ListedSandbox` and `SandboxDetail`. */

import type { LiveSandbox } from './sandboxes.js';

/**
 * The envd version sandpool answers as. 0.5.7 makes the SDK stream uploads as octet-stream and
 * drop the legacy `username` parameter, and keeps newer features the SDK gates on the version
 * (file metadata 0.6.2, watch entry info 0.6.3) behind the SDK's own TemplateError.
 */
export const ENVD_VERSION = '0.5.7';
const CLIENT_ID = 'sandpool';

export function sandboxState(live: LiveSandbox): 'running' | 'paused' {
  return live.session.state === 'Paused' ? 'paused' : 'running';
}

/** The answer of create and connect. */
export function sandboxAnswer(live: LiveSandbox) {
  const s = live.sandbox;
  return {
    templateID: s.templateId,
    sandboxID: s.sandboxId,
    alias: s.templateId,
    clientID: CLIENT_ID,
    envdVersion: ENVD_VERSION,
    envdAccessToken: s.accessToken,
    // The code interpreter's /contexts calls carry only this header, so it names the same token.
    trafficAccessToken: s.accessToken,
    domain: null,
  };
}

/** An entry of the list. */
export function listed(live: LiveSandbox) {
  const s = live.sandbox;
  const limits = live.pool.options.limits;
  return {
    templateID: s.templateId,
    alias: s.templateId,
    sandboxID: s.sandboxId,
    clientID: CLIENT_ID,
    startedAt: s.startedAt.toISOString(),
    endAt: s.endAt.toISOString(),
    cpuCount: limits.cpus,
    memoryMB: limits.memoryMb,
    diskSizeMB: limits.diskMb,
    metadata: s.metadata,
    state: sandboxState(live),
    envdVersion: ENVD_VERSION,
    volumeMounts: [],
  };
}

/** GET /sandboxes/{id}. */
export function detail(live: LiveSandbox) {
  return {
    ...listed(live),
    envdAccessToken: live.sandbox.accessToken,
    allowInternetAccess: live.pool.options.network.egress === 'EgressEnabled',
    domain: null,
    lifecycle: { onTimeout: live.sandbox.onTimeout, autoResume: live.sandbox.autoResume },
  };
}
