import { homedir, hostname } from 'node:os';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../src/config.js';

function configError(run: () => unknown): ConfigError {
  try {
    run();
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return error as ConfigError;
  }
  throw new Error('expected a ConfigError');
}

describe('loadConfig', () => {
  it('has defaults', () => {
    expect(loadConfig({}, {})).toEqual({
      host: '127.0.0.1',
      port: 8080,
      nodeName: `${hostname()}-${process.pid}`,
      dataDir: join(homedir(), '.local', 'share', 'cloudphone'),
      logLevel: 'info',
      logFormat: 'auto',
      accessTokenTtlSeconds: 900,
      refreshTokenTtlSeconds: 2_592_000,
      bodyLimitBytes: 1_048_576,
      trustProxy: false,
      loginThrottle: { freeAttempts: 3, addressFreeAttempts: 20, maxDelaySeconds: 60, forgetAfterSeconds: 900 },
      idempotencyTtlSeconds: 86_400,
      adbServers: [],
      localAdb: 'auto',
      adbDevices: [],
      virtualDevices: 0,
      virtualProfile: 'virtual',
      maxPushBytes: 4 * 1024 ** 3,
      maxAppBytes: 512 * 1024 ** 2,
      installConcurrency: 16,
      billingTimeZone: 'UTC',
      billingCheckSeconds: 5,
      mailFrom: 'cloudphone <cloudphone@localhost>',
      webhookAllowPrivate: false,
      webhookTimeoutSeconds: 15,
      leaseExpiryWarningMinutes: 5,
      inboxRetentionDays: 30,
      streamHeartbeatSeconds: 15,
    });
  });

  it('reads the notification settings, and never echoes the SMTP password', () => {
    const config = loadConfig(
      {},
      {
        CLOUDPHONE_SMTP_URL: 'smtps://farm:s3cret@127.0.0.1:465',
        CLOUDPHONE_MAIL_FROM: 'Farm <farm@example.com>',
        CLOUDPHONE_PUBLIC_URL: 'https://farm.example.com/',
        CLOUDPHONE_WEBHOOK_ALLOW_PRIVATE: 'yes',
        CLOUDPHONE_WEBHOOK_TIMEOUT: '5',
        CLOUDPHONE_LEASE_EXPIRY_WARNING: '0',
        CLOUDPHONE_INBOX_RETENTION: '7',
        CLOUDPHONE_STREAM_HEARTBEAT: '2',
      },
    );
    expect(config).toMatchObject({
      smtpUrl: 'smtps://farm:s3cret@127.0.0.1:465',
      mailFrom: 'Farm <farm@example.com>',
      publicUrl: 'https://farm.example.com',
      webhookAllowPrivate: true,
      webhookTimeoutSeconds: 5,
      leaseExpiryWarningMinutes: 0,
      inboxRetentionDays: 7,
      streamHeartbeatSeconds: 2,
    });
    expect(() => loadConfig({}, { CLOUDPHONE_SMTP_URL: 'http://farm:s3cret@127.0.0.1' })).toThrow(
      'CLOUDPHONE_SMTP_URL: expected an SMTP URL such as smtp://user:password@mail.example.com:587 or smtps://mail.example.com, got "http://farm:***@127.0.0.1/"',
    );
    expect(() => loadConfig({}, { CLOUDPHONE_PUBLIC_URL: 'farm.example.com' })).toThrow('CLOUDPHONE_PUBLIC_URL');
    expect(() => loadConfig({}, { CLOUDPHONE_STREAM_HEARTBEAT: '0' })).toThrow('CLOUDPHONE_STREAM_HEARTBEAT');
  });

  it('reads the device settings', () => {
    const config = loadConfig(
      {},
      {
        CLOUDPHONE_ADB_SERVERS: ' 192.0.2.5:5037, lab-1.example:5038 ,,192.0.2.5:5037',
        CLOUDPHONE_LOCAL_ADB: 'OFF',
        CLOUDPHONE_ADB_DEVICES: '198.51.100.20:5555,[::1]:5555',
        CLOUDPHONE_VIRTUAL_DEVICES: '3',
        CLOUDPHONE_VIRTUAL_PROFILE: 'pixel-7',
        CLOUDPHONE_MAX_PUSH: '512mb',
        CLOUDPHONE_MAX_APP: '64mb',
        CLOUDPHONE_INSTALL_CONCURRENCY: '4',
      },
    );
    expect(config).toMatchObject({
      adbServers: ['192.0.2.5:5037', 'lab-1.example:5038'],
      localAdb: 'off',
      adbDevices: ['198.51.100.20:5555', '[::1]:5555'],
      virtualDevices: 3,
      virtualProfile: 'pixel-7',
      maxPushBytes: 512 * 1024 ** 2,
      maxAppBytes: 64 * 1024 ** 2,
      installConcurrency: 4,
    });
    expect(loadConfig({ adbServers: ['a:1', '[::1]:5037'], adbDevices: 'b:2,c:3', virtualDevices: 200 }, {})).toMatchObject({
      adbServers: ['a:1', '[::1]:5037'],
      adbDevices: ['b:2', 'c:3'],
      virtualDevices: 200,
    });
  });

  it('puts the data directory under an absolute XDG_DATA_HOME, ignoring a relative one', () => {
    expect(loadConfig({}, { XDG_DATA_HOME: '/srv/data' }).dataDir).toBe('/srv/data/cloudphone');
    expect(loadConfig({}, { XDG_DATA_HOME: 'relative' }).dataDir).toBe(
      join(homedir(), '.local', 'share', 'cloudphone'),
    );
  });

  it('reads CLOUDPHONE_* variables', () => {
    const config = loadConfig(
      {},
      {
        CLOUDPHONE_HOST: '0.0.0.0',
        CLOUDPHONE_PORT: '9000',
        CLOUDPHONE_DATA_DIR: 'relative/dir',
        CLOUDPHONE_LOG_LEVEL: 'debug',
        CLOUDPHONE_LOG_FORMAT: 'Pretty',
        CLOUDPHONE_ADMIN_PASSWORD: 'correct-horse-battery-staple',
        CLOUDPHONE_ACCESS_TOKEN_TTL: '5m',
        CLOUDPHONE_REFRESH_TOKEN_TTL: '7d',
        CLOUDPHONE_BODY_LIMIT: '2mb',
        CLOUDPHONE_TRUST_PROXY: 'TRUE',
      },
    );
    expect(config).toMatchObject({
      host: '0.0.0.0',
      port: 9000,
      dataDir: resolve('relative/dir'),
      logLevel: 'debug',
      logFormat: 'pretty',
      adminPassword: 'correct-horse-battery-staple',
      accessTokenTtlSeconds: 300,
      refreshTokenTtlSeconds: 604_800,
      bodyLimitBytes: 2_097_152,
      trustProxy: true,
    });
  });

  it('prefers explicit options over the environment, and ignores empty variables', () => {
    const config = loadConfig(
      { port: '0', host: 'localhost' },
      { CLOUDPHONE_PORT: '9000', CLOUDPHONE_HOST: '', CLOUDPHONE_LOG_LEVEL: '' },
    );
    expect(config).toMatchObject({ port: 0, host: 'localhost', logLevel: 'info' });
  });

  it('accepts typed options', () => {
    const loginThrottle = { freeAttempts: 0, addressFreeAttempts: 2, maxDelaySeconds: 1, forgetAfterSeconds: 3 };
    const config = loadConfig(
      { port: 1234, trustProxy: true, accessTokenTtlSeconds: 60, loginThrottle, bodyLimitBytes: 4096 },
      {},
    );
    expect(config).toMatchObject({
      port: 1234,
      trustProxy: true,
      accessTokenTtlSeconds: 60,
      loginThrottle,
      bodyLimitBytes: 4096,
    });
  });

  it.each([
    [{ CLOUDPHONE_PORT: 'abc' }, 'CLOUDPHONE_PORT: expected an integer from 0 to 65535, got "abc"'],
    [{ CLOUDPHONE_PORT: '65536' }, 'CLOUDPHONE_PORT: expected an integer from 0 to 65535, got "65536"'],
    [{ CLOUDPHONE_PORT: '80.5' }, 'CLOUDPHONE_PORT: expected an integer from 0 to 65535, got "80.5"'],
    [{ CLOUDPHONE_HOST: '   ' }, 'CLOUDPHONE_HOST: expected a host name or IP address, got "   "'],
    [
      { CLOUDPHONE_NODE_NAME: 'node 1' },
      'CLOUDPHONE_NODE_NAME: expected 1 to 63 letters, digits, dots, dashes or underscores, got "node 1"',
    ],
    [
      { CLOUDPHONE_NODE_NAME: 'n'.repeat(64) },
      `CLOUDPHONE_NODE_NAME: expected 1 to 63 letters, digits, dots, dashes or underscores, got "${'n'.repeat(64)}"`,
    ],
    [
      { CLOUDPHONE_NODE_NAME: 'cp-1"}' },
      'CLOUDPHONE_NODE_NAME: expected 1 to 63 letters, digits, dots, dashes or underscores, got "cp-1\\"}"',
    ],
    [
      { CLOUDPHONE_LOG_LEVEL: 'verbose' },
      'CLOUDPHONE_LOG_LEVEL: expected one of fatal, error, warn, info, debug, trace, silent, got "verbose"',
    ],
    [{ CLOUDPHONE_LOG_FORMAT: 'text' }, 'CLOUDPHONE_LOG_FORMAT: expected one of auto, json, pretty, got "text"'],
    [
      { CLOUDPHONE_ACCESS_TOKEN_TTL: '15 minutes' },
      'CLOUDPHONE_ACCESS_TOKEN_TTL: expected a duration of at least 1 second such as 900, 15m or 1h, got "15 minutes"',
    ],
    [
      { CLOUDPHONE_ACCESS_TOKEN_TTL: '0' },
      'CLOUDPHONE_ACCESS_TOKEN_TTL: expected a duration of at least 1 second such as 900, 15m or 1h, got "0"',
    ],
    [
      { CLOUDPHONE_REFRESH_TOKEN_TTL: '-1d' },
      'CLOUDPHONE_REFRESH_TOKEN_TTL: expected a duration of at least 1 second such as 86400, 12h or 30d, got "-1d"',
    ],
    [
      { CLOUDPHONE_BODY_LIMIT: '1tb' },
      'CLOUDPHONE_BODY_LIMIT: expected a size of at least 1kb such as 1048576, 512kb or 1mb, got "1tb"',
    ],
    [
      { CLOUDPHONE_BODY_LIMIT: '100' },
      'CLOUDPHONE_BODY_LIMIT: expected a size of at least 1kb such as 1048576, 512kb or 1mb, got "100"',
    ],
    [{ CLOUDPHONE_TRUST_PROXY: 'maybe' }, 'CLOUDPHONE_TRUST_PROXY: expected true or false, got "maybe"'],
    [
      { CLOUDPHONE_ADB_SERVERS: 'localhost' },
      'CLOUDPHONE_ADB_SERVERS: expected a comma-separated list of host:port addresses such as 127.0.0.1:5037,lab-1:5037, got "localhost"',
    ],
    [
      { CLOUDPHONE_ADB_SERVERS: 'a:5037,b:70000' },
      'CLOUDPHONE_ADB_SERVERS: expected a comma-separated list of host:port addresses such as 127.0.0.1:5037,lab-1:5037, got "a:5037,b:70000"',
    ],
    [
      { CLOUDPHONE_ADB_SERVERS: '::1:5037' },
      'CLOUDPHONE_ADB_SERVERS: expected a comma-separated list of host:port addresses such as 127.0.0.1:5037,lab-1:5037, got "::1:5037"',
    ],
    [
      { CLOUDPHONE_ADB_DEVICES: 'phone 1:5555' },
      'CLOUDPHONE_ADB_DEVICES: expected a comma-separated list of host:port addresses such as 198.51.100.20:5555, got "phone 1:5555"',
    ],
    [{ CLOUDPHONE_LOCAL_ADB: 'sometimes' }, 'CLOUDPHONE_LOCAL_ADB: expected one of auto, on, off, got "sometimes"'],
    [
      { CLOUDPHONE_VIRTUAL_DEVICES: '201' },
      'CLOUDPHONE_VIRTUAL_DEVICES: expected an integer from 0 to 200, got "201"',
    ],
    [
      { CLOUDPHONE_VIRTUAL_PROFILE: 'a/b' },
      'CLOUDPHONE_VIRTUAL_PROFILE: expected a profile name of 1 to 64 letters, digits, dots, dashes or underscores, got "a/b"',
    ],
    [
      { CLOUDPHONE_MAX_PUSH: '4 gb' },
      'CLOUDPHONE_MAX_PUSH: expected a size of at least 1kb such as 104857600, 512mb or 4gb, got "4 gb"',
    ],
    [
      { CLOUDPHONE_INSTALL_CONCURRENCY: '0' },
      'CLOUDPHONE_INSTALL_CONCURRENCY: expected an integer from 1 to 100, got "0"',
    ],
    [
      { CLOUDPHONE_BILLING_TIME_ZONE: 'Mars/Olympus' },
      'CLOUDPHONE_BILLING_TIME_ZONE: expected an IANA time zone such as UTC or Europe/Berlin, got "Mars/Olympus"',
    ],
    [
      { CLOUDPHONE_BILLING_CHECK: '61' },
      'CLOUDPHONE_BILLING_CHECK: expected an integer number of seconds from 1 to 60, got "61"',
    ],
  ])('rejects %o with a one-line message', (env, message) => {
    const error = configError(() => loadConfig({}, env));
    expect(error.message).toBe(message);
    expect(error.message).not.toContain('\n');
  });

  it('names the option, not the variable, when the bad value came from an option', () => {
    expect(configError(() => loadConfig({ port: '-1' }, { CLOUDPHONE_PORT: '8080' })).message).toBe(
      'port: expected an integer from 0 to 65535, got "-1"',
    );
    expect(configError(() => loadConfig({ idempotencyTtlSeconds: 0 }, {})).message).toBe(
      'idempotencyTtlSeconds: expected a duration of at least 1 second such as 3600, 60m or 1d, got 0',
    );
  });

  it('never echoes a bad admin password', () => {
    const error = configError(() => loadConfig({}, { CLOUDPHONE_ADMIN_PASSWORD: 'short-pw' }));
    expect(error.message).toBe('CLOUDPHONE_ADMIN_PASSWORD: expected a password of 12 to 256 characters');
  });

  it('reads the node name from CLOUDPHONE_NODE_NAME or an option', () => {
    expect(loadConfig({}, { CLOUDPHONE_NODE_NAME: 'cp-1.rack_2' }).nodeName).toBe('cp-1.rack_2');
    expect(loadConfig({ nodeName: 'cp-3' }, { CLOUDPHONE_NODE_NAME: 'cp-1' }).nodeName).toBe('cp-3');
    expect(configError(() => loadConfig({ nodeName: '' }, {})).message).toBe(
      'nodeName: expected 1 to 63 letters, digits, dots, dashes or underscores, got ""',
    );
  });

  it('reads a PostgreSQL URL from CLOUDPHONE_DATABASE_URL or an option; SQLite when there is none', () => {
    const url = 'postgres://farm:secret@127.0.0.1:5432/cloudphone';
    expect(loadConfig({}, { CLOUDPHONE_DATABASE_URL: url }).databaseUrl).toBe(url);
    expect(loadConfig({ databaseUrl: `${url}?sslmode=require` }, {}).databaseUrl).toBe(`${url}?sslmode=require`);
    expect(loadConfig({}, {}).databaseUrl).toBeUndefined();
  });

  it('refuses a URL that is not PostgreSQL, echoing it with the password masked', () => {
    const error = configError(() => loadConfig({}, { CLOUDPHONE_DATABASE_URL: 'mysql://farm:secret@db/cloudphone' }));
    expect(error.message).toBe(
      'CLOUDPHONE_DATABASE_URL: expected a PostgreSQL URL such as postgres://user:password@host:5432/database, ' +
        'got "mysql://farm:***@db/cloudphone"',
    );
    expect(configError(() => loadConfig({ databaseUrl: 'postgres:///nohost' }, {})).message).toMatch(/^databaseUrl: /);
  });

  it('rejects a bad login throttle', () => {
    const loginThrottle = { freeAttempts: 3, addressFreeAttempts: 20, maxDelaySeconds: 0, forgetAfterSeconds: 900 };
    expect(configError(() => loadConfig({ loginThrottle }, {})).message).toMatch(/^loginThrottle: expected /);
  });
});
