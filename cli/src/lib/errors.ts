/** Exit codes, documented in `cloudphone help`. */
export const ExitCode = {
  ok: 0,
  error: 1,
  usage: 2,
  cancelled: 3,
  unauthenticated: 4,
  timedOut: 69,
  interrupted: 130,
} as const;

export const EXIT_CODE_HELP: readonly (readonly [number, string])[] = [
  [ExitCode.ok, 'Success.'],
  [ExitCode.error, 'The request failed: an API error, or the server could not be reached.'],
  [ExitCode.usage, 'Usage error: unknown command, bad flag or argument, missing input, confirmation needed.'],
  [ExitCode.cancelled, 'Cancelled at a prompt.'],
  [ExitCode.unauthenticated, 'Not authenticated: not logged in, or the server answered 401.'],
  [ExitCode.timedOut, 'Waiting for a condition timed out.'],
  [ExitCode.interrupted, 'Interrupted (Ctrl-C).'],
];

/** An error raised by the CLI itself rather than by the API. */
export class CliError extends Error {
  constructor(
    message: string,
    readonly code: string,
    readonly exitCode: number,
  ) {
    super(message);
    this.name = new.target.name;
  }
}

/** The command line or its input is wrong (exit 2). */
export class UsageError extends CliError {
  constructor(message: string) {
    super(message, 'usage_error', ExitCode.usage);
  }
}

/** The user declined a confirmation or left a prompt (exit 3). */
export class CancelledError extends CliError {
  constructor(message = 'Cancelled.') {
    super(message, 'cancelled', ExitCode.cancelled);
  }
}

/** No credentials to send (exit 4). */
export class NotLoggedInError extends CliError {
  constructor(profile: string) {
    super(
      `Not logged in (profile ${profile}). Run \`cloudphone login\` or set CLOUDPHONE_TOKEN.`,
      'not_logged_in',
      ExitCode.unauthenticated,
    );
  }
}

/** The problem details the API sends with every error. */
export interface Problem {
  type?: string;
  title?: string;
  status?: number;
  detail?: string;
  code?: string;
  requestId?: string;
  errors?: { field: string; message: string }[];
  [key: string]: unknown;
}

/** How a failed command ends: the exit code, the line(s) for stderr and the problem for `--json`. */
export interface Failure {
  exitCode: number;
  message: string;
  problem: Problem;
}

interface ApiErrorLike {
  status: number;
  problem: Problem;
}

function isApiError(error: unknown): error is Error & ApiErrorLike {
  return (
    error instanceof Error &&
    typeof (error as Partial<ApiErrorLike>).status === 'number' &&
    typeof (error as Partial<ApiErrorLike>).problem === 'object' &&
    (error as Partial<ApiErrorLike>).problem !== null
  );
}

/** oclif's own errors (unknown flags, bad arguments) carry their exit code in `oclif.exit`. */
function oclifExit(error: unknown): number | undefined {
  const exit = (error as { oclif?: { exit?: unknown } } | null)?.oclif?.exit;
  return typeof exit === 'number' ? exit : undefined;
}

const TRANSPORT_CODES: Record<string, string> = {
  APIConnectionError: 'connection_error',
  APITimeoutError: 'timeout',
  APIUserAbortError: 'aborted',
};

/** How a failure is told. */
export interface FailureOptions {
  /** A 401 ends with the hint to log in (again): not for `login` itself, whose credentials were just refused. */
  loginHint?: boolean;
}

function apiFailure(error: Error & ApiErrorLike, { loginHint = true }: FailureOptions): Failure {
  const { problem, status } = error;
  const code = problem.code ?? `http_${status}`;
  const detail = problem.detail ?? problem.title ?? error.message;
  const context = [code, problem.requestId && `request ${problem.requestId}`].filter(Boolean).join(', ');
  const lines = [`Error: ${detail} (${context})`];
  for (const field of problem.errors ?? []) lines.push(`  ${field.field}: ${field.message}`);
  if (status === 401 && loginHint) lines.push('Run `cloudphone login` to log in again, or check CLOUDPHONE_TOKEN.');
  return {
    exitCode: status === 401 ? ExitCode.unauthenticated : ExitCode.error,
    message: lines.join('\n'),
    problem: { ...problem, status, code },
  };
}

/** Maps anything a command can throw to its exit code, message and JSON problem. */
export function describeFailure(error: unknown, options: FailureOptions = {}): Failure {
  if (error instanceof CliError) {
    return {
      exitCode: error.exitCode,
      message: `Error: ${error.message}`,
      problem: { code: error.code, title: error.message },
    };
  }
  if (isApiError(error)) return apiFailure(error, options);
  const exit = oclifExit(error);
  const message = error instanceof Error ? error.message : String(error);
  if (exit !== undefined) {
    return {
      exitCode: exit,
      message: `Error: ${message}`,
      problem: { code: exit === ExitCode.usage ? 'usage_error' : 'error', title: message },
    };
  }
  const transport = error instanceof Error ? TRANSPORT_CODES[error.name] : undefined;
  return {
    exitCode: ExitCode.error,
    message: `Error: ${message}`,
    problem: { code: transport ?? 'error', title: message },
  };
}
