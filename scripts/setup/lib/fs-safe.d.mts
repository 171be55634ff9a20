// Types of fs-safe.mjs, for the tests that import it.
type Log = (message: string) => void;
export function holderAlive(text: string): boolean;
export function withLock<T>(path: string, log: Log, fn: () => Promise<T>): Promise<T>;
export function mountsUnder(dir: string): string[];
export function processesUsing(dir: string): number[];
export function removeTree(dir: string, log?: Log): Promise<void>;
export function removeStaleTemps(dir: string, log?: Log): Promise<void>;
export function writeFileAtomic(path: string, content: string | Buffer, options?: object): void;
