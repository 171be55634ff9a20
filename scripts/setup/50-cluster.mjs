/**
 * Setup step 50: Debian's etcd (server and etcdctl) and HAProxy, for the cluster-mode tests
 * (test/cluster/) and the set-up docs/CLUSTER.md documents. Only the binaries are wanted: the
 * packages would start system services on install, so a policy-rc.d that exits 101 keeps them
 * from doing so while apt runs (it is left alone when the host already has one, and removed
 * afterwards otherwise). Idempotent: nothing to do when the binaries are there.
 */
import { existsSync, rmSync, writeFileSync } from 'node:fs';

import { aptInstall } from './lib/apt.mjs';

export const CLUSTER_PACKAGES = ['etcd-server', 'etcd-client', 'haproxy'];
export const CLUSTER_BINARIES = ['/usr/bin/etcd', '/usr/bin/etcdctl', '/usr/sbin/haproxy'];

const POLICY = '/usr/sbin/policy-rc.d';

export default async function setup({ log }) {
  if (CLUSTER_BINARIES.every((file) => existsSync(file))) return;
  if (process.platform !== 'linux' || !existsSync('/usr/bin/apt-get')) {
    log('skipping: etcd and haproxy are missing and this is not a Debian host; the cluster tests need them');
    return;
  }
  if (process.getuid?.() !== 0) {
    log('not root: skipping etcd and haproxy (the cluster tests will be skipped)');
    return;
  }
  // Our own policy file only if the host has none; an interrupted run leaves at most this file,
  // which only stops services from starting on package installs.
  const ownPolicy = !existsSync(POLICY);
  if (ownPolicy)
    writeFileSync(POLICY, '#!/bin/sh\n# sandpool setup: do not start services while installing\nexit 101\n', { mode: 0o755 });
  try {
    await aptInstall(CLUSTER_PACKAGES, log);
  } finally {
    if (ownPolicy) rmSync(POLICY, { force: true });
  }
  const missing = CLUSTER_BINARIES.filter((file) => !existsSync(file));
  if (missing.length > 0)
    throw new Error(`apt-get installed ${CLUSTER_PACKAGES.join(', ')} but ${missing.join(', ')} is missing`);
}
