/**
 * The host directory one ContainerBackend instance owns: `<runDir>/sessions/<pid>.<start>/b-<random>/`.
 * It holds its sessions' host dirs (agent and forwarder sockets) and the seccomp profile file
 * Podman reads. close() removes this directory only, then the process directory when no other
 * backend of the process still uses it: closing one pool never touches another's sockets. A
 * crashed process's whole `<pid>.<start>` directory is reaped by the next prepare() (leftovers.ts).
 */

import { randomBytes } from 'node:crypto';
import { chownSync, mkdirSync, rmdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import { ownerIdentity } from './labels.js';

export class InstanceDir {
  /** `<runDir>/sessions/<pid>.<start>`: shared by every backend of this process. */
  readonly processDir: string;
  /** This backend's own directory inside it. */
  readonly path: string;
  /** Random id of this backend instance (names its directory and its egress networks). */
  readonly id: string;
  #seccompFile: string | undefined;

  constructor(runDir: string) {
    const me = ownerIdentity();
    this.processDir = join(runDir, 'sessions', `${me.pid}.${me.start}`);
    this.id = randomBytes(4).toString('hex');
    // Short names: unix socket paths (agent, forwarder, state transfer sockets inside) end at 107 bytes.
    this.path = join(this.processDir, `b-${this.id}`);
  }

  /** A new session host dir (0700, a random name); handed to `uid` when the session's agent must create its socket there. */
  sessionDir(uid: number | undefined): string {
    mkdirSync(this.path, { recursive: true, mode: 0o700 });
    const dir = join(this.path, randomBytes(6).toString('hex'));
    mkdirSync(dir, { mode: 0o700 }); // not recursive: an existing name is an error, never shared
    if (uid !== undefined) chownSync(dir, uid, uid);
    return dir;
  }

  /** The seccomp profile as a file the engine can read (written once, root-only). */
  seccompFile(json: string): string {
    if (this.#seccompFile === undefined) {
      mkdirSync(this.path, { recursive: true, mode: 0o700 });
      const file = join(this.path, 'seccomp.json');
      writeFileSync(file, json, { mode: 0o600 });
      this.#seccompFile = file;
    }
    return this.#seccompFile;
  }

  /** Remove this backend's directory, and the process directory if it is now empty. */
  remove(): void {
    rmSync(this.path, { recursive: true, force: true });
    this.#seccompFile = undefined;
    try {
      rmdirSync(this.processDir);
    } catch {
      // not empty (another backend of this process), or already gone
    }
  }
}
