/**
 * Wire types of the sandpool agent protocol (agent/PROTOCOL.md) and defensive parsers for every
 * frame the agent sends. Nothing from the agent is used before it passed one of these checks.
 */

import type { ExecutionOutcome, FileInfo, ImageOutput, LostState } from '../../../src/backend.js';
import type { JsonValue } from '../../../src/types.js';

export const PROTOCOL_VERSION = 1;

/** Readiness announcement: the kernel is up and the popular libraries are imported. */
export interface AgentReady {
  readonly protocol: number;
  readonly agentVersion: string;
  readonly pid: number;
  readonly python: string;
  readonly node: string | null;
  readonly preloaded: readonly string[];
  readonly missing: readonly string[];
  readonly dataDir: string;
  readonly startupMs: number;
}

export interface AgentRuntime {
  readonly name: string;
  readonly version: string;
}

/** Versions of the interpreters and installed packages (Azure's `/metadata`). */
export interface AgentInfo {
  readonly agentVersion: string;
  readonly protocol: number;
  readonly runtimes: readonly AgentRuntime[];
  readonly packages: readonly AgentRuntime[];
  readonly dataDir: string;
}

/** What a `checkpoint` or `restore` did: files and kernel names kept, and what was not kept. */
export interface AgentStateReport {
  readonly files: number;
  /** Names kept per kernel (`python`, `javascript`). */
  readonly kernels: Readonly<Record<string, number>>;
  readonly lost: readonly LostState[];
}

/** Execution outcome as the agent sends it: stdout/stderr travel separately in `output` frames. */
export type WireOutcome = Omit<ExecutionOutcome, 'stdout' | 'stderr'>;

export type AgentFrame =
  | { readonly type: 'ready'; readonly id: FrameId | null; readonly ready: AgentReady }
  | { readonly type: 'pong'; readonly id: FrameId; readonly busy: boolean }
  | { readonly type: 'info'; readonly id: FrameId; readonly info: AgentInfo }
  | { readonly type: 'output'; readonly id: FrameId; readonly stream: 'stdout' | 'stderr'; readonly data: string }
  | { readonly type: 'display'; readonly id: FrameId; readonly image: ImageOutput }
  | {
      readonly type: 'result';
      readonly id: FrameId;
      readonly outcome?: WireOutcome;
      readonly file?: FileInfo;
      readonly files?: FileInfo[];
      readonly checkpoint?: AgentStateReport;
      readonly restore?: AgentStateReport;
    }
  | { readonly type: 'file'; readonly id: FrameId; readonly file: FileInfo }
  | { readonly type: 'chunk'; readonly id: FrameId; readonly data: string }
  | { readonly type: 'end'; readonly id: FrameId }
  | { readonly type: 'started'; readonly id: FrameId }
  /** A frame type of a newer agent: ignored (the protocol allows additions within a version). */
  | { readonly type: 'unknown'; readonly id: null }
  | { readonly type: 'error'; readonly id: FrameId | null; readonly code: string; readonly message: string };

export type FrameId = number;

export class ProtocolError extends Error {}

type Rec = Record<string, unknown>;

function isRecord(value: unknown): value is Rec {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function fail(message: string): never {
  throw new ProtocolError(message);
}

function str(rec: Rec, key: string, max = 1 << 20): string {
  const v = rec[key];
  if (typeof v !== 'string' || v.length > max) fail(`field ${key} must be a string of at most ${max} chars`);
  return v;
}

function optStr(rec: Rec, key: string, max = 4096): string | null {
  const v = rec[key];
  if (v === undefined || v === null) return null;
  return str(rec, key, max);
}

function num(rec: Rec, key: string): number {
  const v = rec[key];
  if (typeof v !== 'number' || !Number.isFinite(v)) fail(`field ${key} must be a finite number`);
  return v;
}

function strList(rec: Rec, key: string, maxItems: number): string[] {
  const v = rec[key];
  if (v === undefined) return [];
  if (!Array.isArray(v) || v.length > maxItems) fail(`field ${key} must be a list of at most ${maxItems}`);
  return v.map((item) => {
    if (typeof item !== 'string' || item.length > 256) fail(`field ${key} holds a non-string`);
    return item;
  });
}

function frameId(rec: Rec): FrameId {
  const v = rec.id;
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) fail('frame id must be a non-negative integer');
  return v;
}

const RELATIVE_PATH = /^(?!\/)(?!.*(?:^|\/)\.{1,2}(?:\/|$))[^\0]*$/;

/** A FileInfo from the agent: its path must stay relative and free of `.`/`..` segments. */
export function parseFileInfo(value: unknown): FileInfo {
  if (!isRecord(value)) fail('file info must be an object');
  const path = str(value, 'path', 4096);
  if (path !== '' && !RELATIVE_PATH.test(path)) fail('file info path escapes the data directory');
  const type = value.type;
  if (type !== 'file' && type !== 'directory') fail('file info type must be file or directory');
  const size = num(value, 'sizeInBytes');
  if (!Number.isSafeInteger(size) || size < 0) fail('file size must be a non-negative integer');
  return {
    name: str(value, 'name', 1024),
    path,
    type,
    sizeInBytes: size,
    lastModifiedAt: str(value, 'lastModifiedAt', 64),
  };
}

function parseImage(value: unknown): ImageOutput {
  if (!isRecord(value) || value.type !== 'image') fail('image must be {type:"image"}');
  const format = value.format;
  if (format !== 'png' && format !== 'jpeg' && format !== 'svg') fail('image format must be png, jpeg or svg');
  return { type: 'image', format, base64_data: str(value, 'base64_data', 64 << 20) };
}

function parseResultValue(value: unknown): JsonValue {
  if (value === null || typeof value === 'string' || typeof value === 'boolean') return value;
  if (typeof value === 'number') return Number.isFinite(value) ? value : null;
  if (isRecord(value)) return parseImage(value) as unknown as JsonValue;
  return fail('result must be a JSON primitive or an image');
}

function parseOutcome(value: unknown): WireOutcome {
  if (!isRecord(value)) fail('outcome must be an object');
  const status = value.status;
  if (status !== 'Succeeded' && status !== 'Failed') fail('outcome status must be Succeeded or Failed');
  const sessionState = value.sessionState;
  if (sessionState !== 'kept' && sessionState !== 'restarted' && sessionState !== 'lost') {
    fail('outcome sessionState must be kept, restarted or lost');
  }
  const rawImages = value.images ?? [];
  if (!Array.isArray(rawImages) || rawImages.length > 256) fail('outcome images must be a short list');
  const exitCode = value.exitCode;
  if (exitCode !== undefined && exitCode !== null && !Number.isSafeInteger(exitCode)) fail('exitCode must be an integer');
  const time = num(value, 'executionTimeInMilliseconds');
  return {
    status,
    result: parseResultValue('result' in value ? value.result : ''),
    sessionState,
    stdoutTruncated: value.stdoutTruncated === true,
    stderrTruncated: value.stderrTruncated === true,
    timedOut: value.timedOut === true,
    images: rawImages.map(parseImage),
    executionTimeInMilliseconds: Math.max(0, time),
    ...(typeof exitCode === 'number' ? { exitCode } : {}),
  };
}

const MAX_LOST = 1000;

function parseStateReport(value: unknown): AgentStateReport {
  if (!isRecord(value)) fail('a checkpoint report must be an object');
  const files = value.files ?? 0;
  if (!Number.isSafeInteger(files) || (files as number) < 0) fail('report files must be a count');
  const kernels: Record<string, number> = {};
  const rawKernels = value.kernels ?? {};
  if (!isRecord(rawKernels)) fail('report kernels must be an object');
  for (const [name, count] of Object.entries(rawKernels).slice(0, 8)) {
    if (!/^[a-z]{1,16}$/.test(name) || !Number.isSafeInteger(count) || (count as number) < 0)
      fail('report kernels must map names to counts');
    kernels[name] = count as number;
  }
  const rawLost = value.lost ?? [];
  if (!Array.isArray(rawLost)) fail('report lost must be a list');
  const lost = rawLost.slice(0, MAX_LOST).map((item): LostState => {
    if (!isRecord(item)) fail('report lost entries must be objects');
    return {
      language: str(item, 'language', 32),
      name: str(item, 'name', 256),
      type: str(item, 'type', 128),
      reason: str(item, 'reason', 1024),
    };
  });
  return { files: files as number, kernels, lost };
}

function parseReady(rec: Rec): AgentReady {
  return {
    protocol: num(rec, 'protocol'),
    agentVersion: str(rec, 'agentVersion', 64),
    pid: num(rec, 'pid'),
    python: str(rec, 'python', 64),
    node: optStr(rec, 'node', 64),
    preloaded: strList(rec, 'preloaded', 256),
    missing: strList(rec, 'missing', 256),
    dataDir: str(rec, 'dataDir', 4096),
    startupMs: num(rec, 'startupMs'),
  };
}

function parseRuntimes(rec: Rec, key: string, max: number): AgentRuntime[] {
  const v = rec[key];
  if (!Array.isArray(v) || v.length > max) fail(`${key} must be a list of at most ${max}`);
  return v.map((item) => {
    if (!isRecord(item)) fail(`${key} entries must be objects`);
    return { name: str(item, 'name', 256), version: str(item, 'version', 256) };
  });
}

/** Parse and validate one frame. Throws `ProtocolError` on anything unexpected. */
export function parseAgentFrame(line: Buffer): AgentFrame {
  let value: unknown;
  try {
    value = JSON.parse(line.toString('utf8'));
  } catch {
    fail('frame is not valid JSON');
  }
  if (!isRecord(value)) fail('frame must be a JSON object');
  switch (value.type) {
    case 'ready':
      return { type: 'ready', id: value.id === undefined || value.id === null ? null : frameId(value), ready: parseReady(value) };
    case 'pong':
      return { type: 'pong', id: frameId(value), busy: value.busy === true };
    case 'info':
      return {
        type: 'info',
        id: frameId(value),
        info: {
          agentVersion: str(value, 'agentVersion', 64),
          protocol: num(value, 'protocol'),
          runtimes: parseRuntimes(value, 'runtimes', 64),
          packages: parseRuntimes(value, 'packages', 5000),
          dataDir: str(value, 'dataDir', 4096),
        },
      };
    case 'output': {
      const stream = value.stream;
      if (stream !== 'stdout' && stream !== 'stderr') fail('output stream must be stdout or stderr');
      return { type: 'output', id: frameId(value), stream, data: str(value, 'data', 1 << 20) };
    }
    case 'display':
      return { type: 'display', id: frameId(value), image: parseImage(value.image) };
    case 'result': {
      const files = value.files;
      if (files !== undefined && (!Array.isArray(files) || files.length > 100_000)) fail('files must be a list');
      return {
        type: 'result',
        id: frameId(value),
        ...(value.outcome !== undefined ? { outcome: parseOutcome(value.outcome) } : {}),
        ...(value.file !== undefined ? { file: parseFileInfo(value.file) } : {}),
        ...(Array.isArray(files) ? { files: files.map(parseFileInfo) } : {}),
        ...(value.checkpoint !== undefined ? { checkpoint: parseStateReport(value.checkpoint) } : {}),
        ...(value.restore !== undefined ? { restore: parseStateReport(value.restore) } : {}),
      };
    }
    case 'file':
      return { type: 'file', id: frameId(value), file: parseFileInfo(value.file) };
    case 'chunk':
      return { type: 'chunk', id: frameId(value), data: str(value, 'data', 1 << 20) };
    case 'end':
      return { type: 'end', id: frameId(value) };
    case 'started':
      return { type: 'started', id: frameId(value) };
    case 'error':
      return {
        type: 'error',
        id: value.id === undefined || value.id === null ? null : frameId(value),
        code: str(value, 'code', 64),
        message: str(value, 'message', 16_384),
      };
    default:
      if (typeof value.type !== 'string') fail('frame type must be a string');
      return { type: 'unknown', id: null };
  }
}
