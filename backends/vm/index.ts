/**
 * `sandpool/backends/vm`: each session in its own QEMU microVM (KVM, WHPX or HVF where they work,
 * TCG otherwise), reached over virtio-serial, restored from a warm snapshot. See docs/VM.md.
 */
export { VMBackend, type VmStartRecord } from './vm-backend.js';
export { MIN_VM_MEMORY_MB, VMBackendOptionsSchema, type VMBackendOptions } from './vm-options.js';
export {
  ACCELERATORS,
  chooseAccelerator,
  hardwareCandidates,
  probeAccelerator,
  type Accelerator,
  type AcceleratorChoice,
} from './accelerator.js';
export { reapDeadOwners, defaultRunDir, type ReapReport } from './run-dir.js';
