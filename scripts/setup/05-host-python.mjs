/**
 * Setup step 05: the host's own Python data stack (Debian packages), so the agent's tests can run
 * the real kernel with numpy, pandas and matplotlib figures on the host, without a container or VM.
 * Sessions never use these: containers and VMs carry their own interpreter stack in their images.
 */
import { aptInstall } from './lib/apt.mjs';

export const HOST_PYTHON_PACKAGES = [
  'python3',
  'python3-dill',
  'python3-numpy',
  'python3-pandas',
  'python3-matplotlib',
  'python3-pil',
];

export default async function setup({ log }) {
  if (process.getuid?.() !== 0) {
    log('not root: skipping the host Python packages (agent figure tests will be skipped)');
    return;
  }
  await aptInstall(HOST_PYTHON_PACKAGES, log);
}
