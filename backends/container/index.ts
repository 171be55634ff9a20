/** `sandpool/backends/container`: sessions as OCI containers over the Docker Engine API (Docker or Podman). */
export { ContainerBackend } from './container-backend.js';
export { ContainerBackendOptionsSchema, DEFAULT_IMAGE, type ContainerBackendOptions } from './options.js';
export { LABEL } from './labels.js';
