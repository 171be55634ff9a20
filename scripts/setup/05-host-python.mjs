/**
 * Setup step 05: the host's own Python data stack (Debian packages), so the agent's tests can run
 * the real kernel with numpy, pandas and matplotlib figures on the host, without a container or VM,
 * and the HTTP client libraries of the real Azure clients for the server's client sequences.
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
  // The HTTP libraries the real Azure clients use (LangChain and llama-index: requests; Semantic
  // Kernel: httpx; AutoGen: aiohttp): test/server's client sequences send through them, so header
  // and multipart quirks are the real ones.
  'python3-requests',
  'python3-httpx',
  'python3-aiohttp',
];

export default async function setup({ log }) {
  if (process.getuid?.() !== 0) {
    log('not root: skipping the host Python packages (agent figure tests will be skipped)');
    return;
  }
  await aptInstall(HOST_PYTHON_PACKAGES, log);
}
