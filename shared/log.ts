/**
 * One JSON object per line on stdout/stderr: Cloud Logging reads `severity` and `message` and
 * keeps the rest as jsonPayload. Callers pass only what is safe to log: never session ids,
 * security keys or tokens.
 */
export type Severity = 'DEBUG' | 'INFO' | 'NOTICE' | 'WARNING' | 'ERROR';

export type LogFields = Record<string, unknown>;

export type LogSink = (line: string, severity: Severity) => void;

const defaultSink: LogSink = (line, severity) => {
  if (severity === 'ERROR' || severity === 'WARNING') process.stderr.write(line + '\n');
  else process.stdout.write(line + '\n');
};

let sink: LogSink = defaultSink;

/** Tests capture every line to prove that no secret is logged. */
export function setLogSink(next: LogSink | null): void {
  sink = next ?? defaultSink;
}

export function log(severity: Severity, message: string, fields: LogFields = {}): void {
  sink(JSON.stringify({ severity, message, ...fields }), severity);
}
