import { Errors } from '@oclif/core';
import { APIConnectionError, APIError, APITimeoutError } from '@cloudphone/sdk';
import { describe, expect, it } from 'vitest';
import { CancelledError, CliError, describeFailure, ExitCode, NotLoggedInError, UsageError } from '../src/lib/errors.js';

const problem = (status: number, code: string, extra: Record<string, unknown> = {}) => ({
  type: `https://cloudphone.dev/problems/${code}`,
  title: code,
  status,
  code,
  detail: `detail of ${code}`,
  requestId: 'req_01JDX5B2C4D6E8F0G2H4J6K8M0',
  ...extra,
});

describe('describeFailure', () => {
  it('maps any 401 to exit 4, with the problem and a hint', () => {
    for (const code of ['unauthenticated', 'token_expired', 'invalid_credentials']) {
      const failure = describeFailure(APIError.from(401, problem(401, code), {}));
      expect(failure.exitCode).toBe(ExitCode.unauthenticated);
      expect(failure.problem).toMatchObject({ code, status: 401 });
      expect(failure.message).toContain(`Error: detail of ${code} (${code}, request req_01JDX5B2C4D6E8F0G2H4J6K8M0)`);
      expect(failure.message).toContain('cloudphone login');
    }
  });

  it('maps other API errors to exit 1 and lists field errors', () => {
    const errors = [{ field: '/role', message: 'must be equal to one of the allowed values' }];
    const failure = describeFailure(APIError.from(400, problem(400, 'validation_failed', { errors }), {}));
    expect(failure.exitCode).toBe(ExitCode.error);
    expect(failure.message).toBe(
      'Error: detail of validation_failed (validation_failed, request req_01JDX5B2C4D6E8F0G2H4J6K8M0)\n' +
        '  /role: must be equal to one of the allowed values',
    );
    expect(failure.problem).toEqual(problem(400, 'validation_failed', { errors }));
    for (const status of [403, 404, 409, 422, 429, 500]) {
      expect(describeFailure(APIError.from(status, problem(status, 'x'), {})).exitCode).toBe(ExitCode.error);
    }
  });

  it('keeps a non-problem error body readable', () => {
    const failure = describeFailure(APIError.from(502, 'Bad Gateway', { 'x-request-id': 'req_x' }));
    expect(failure.exitCode).toBe(ExitCode.error);
    expect(failure.message).toBe('Error: Bad Gateway (http_502, request req_x)');
  });

  it('maps connection failures and timeouts to exit 1 with their own codes', () => {
    const refused = describeFailure(new APIConnectionError('Connection error: connect ECONNREFUSED 127.0.0.1:1'));
    expect(refused).toEqual({
      exitCode: ExitCode.error,
      message: 'Error: Connection error: connect ECONNREFUSED 127.0.0.1:1',
      problem: { code: 'connection_error', title: 'Connection error: connect ECONNREFUSED 127.0.0.1:1' },
    });
    expect(describeFailure(new APITimeoutError(1000)).problem.code).toBe('timeout');
  });

  it('maps the CLI’s own errors to their exit codes', () => {
    expect(describeFailure(new UsageError('bad')).exitCode).toBe(ExitCode.usage);
    expect(describeFailure(new CancelledError()).exitCode).toBe(ExitCode.cancelled);
    expect(describeFailure(new NotLoggedInError('default'))).toMatchObject({
      exitCode: ExitCode.unauthenticated,
      problem: { code: 'not_logged_in' },
    });
    expect(describeFailure(new CliError('no such profile', 'unknown_profile', ExitCode.error)).problem).toEqual({
      code: 'unknown_profile',
      title: 'no such profile',
    });
  });

  it('maps oclif parse errors to exit 2', () => {
    const failure = describeFailure(new Errors.CLIError('Nonexistent flag: --bogus', { exit: 2 }));
    expect(failure.exitCode).toBe(ExitCode.usage);
    expect(failure.problem.code).toBe('usage_error');
  });

  it('maps anything else to exit 1', () => {
    expect(describeFailure(new Error('boom'))).toEqual({
      exitCode: ExitCode.error,
      message: 'Error: boom',
      problem: { code: 'error', title: 'boom' },
    });
    expect(describeFailure('text').message).toBe('Error: text');
  });
});
