/** Plain public types shared by the pool, the backends and the server. */

export type { ContainerType, CustomContainerTemplate, NetworkPolicy, SessionLimits } from './options.js';

export type JsonPrimitive = string | number | boolean | null;
export type JsonValue = JsonPrimitive | JsonValue[] | { [key: string]: JsonValue };
