/** Human and JSON output for CLI commands. */

/** Print `body` as JSON with --json, else the human rendering. */
export function print(json: boolean, body: unknown, human: () => string): void {
  process.stdout.write(json ? `${JSON.stringify(body, null, 2)}\n` : human());
}

/** A plain aligned text table. */
export function table(headers: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]): string =>
    cells
      .map((c, i) => c.padEnd(widths[i] ?? 0))
      .join('  ')
      .trimEnd();
  return `${[line(headers), ...rows.map(line)].join('\n')}\n`;
}
