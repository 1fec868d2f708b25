import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  configPath,
  DEFAULT_API_URL,
  readConfig,
  resolveContext,
  updateConfig,
  withoutCredentials,
  writeConfig,
  type ConfigFile,
} from '../src/lib/config.js';
import { CliError } from '../src/lib/errors.js';

const config: ConfigFile = {
  activeProfile: 'work',
  profiles: {
    work: { apiUrl: 'https://work.example.com/', username: 'alice', accessToken: 'cpa_work', refreshToken: 'cpr_work' },
    ci: { apiUrl: 'https://ci.example.com', token: 'cpt_ci' },
    empty: { apiUrl: 'https://empty.example.com' },
  },
};

describe('resolveContext', () => {
  it('uses the active profile when nothing else is given', () => {
    const context = resolveContext({}, {}, config);
    expect(context.profileName).toBe('work');
    expect(context.apiUrl).toBe('https://work.example.com');
    expect(context.credentials).toEqual({ kind: 'session', accessToken: 'cpa_work', refreshToken: 'cpr_work' });
  });

  it('falls back to the default profile and the local server', () => {
    const context = resolveContext({}, {}, { profiles: {} });
    expect(context.profileName).toBe('default');
    expect(context.apiUrl).toBe(DEFAULT_API_URL);
    expect(context.credentials).toEqual({ kind: 'none' });
  });

  it('prefers the environment to the active profile', () => {
    const env = { CLOUDPHONE_API_URL: 'https://env.example.com', CLOUDPHONE_TOKEN: 'cpt_env' };
    const context = resolveContext({}, env, config);
    expect(context.profileName).toBe('work');
    expect(context.apiUrl).toBe('https://env.example.com');
    expect(context.credentials).toEqual({ kind: 'token', token: 'cpt_env' });
  });

  it('picks the profile from CLOUDPHONE_PROFILE, and from --profile over it', () => {
    expect(resolveContext({}, { CLOUDPHONE_PROFILE: 'ci' }, config).profileName).toBe('ci');
    expect(resolveContext({ profile: 'work' }, { CLOUDPHONE_PROFILE: 'ci' }, config).profileName).toBe('work');
  });

  it('lets a profile named by --profile win over the environment', () => {
    const env = { CLOUDPHONE_API_URL: 'https://env.example.com', CLOUDPHONE_TOKEN: 'cpt_env' };
    const context = resolveContext({ profile: 'ci' }, env, config);
    expect(context.apiUrl).toBe('https://ci.example.com');
    expect(context.credentials).toEqual({ kind: 'token', token: 'cpt_ci' });
  });

  it('still uses CLOUDPHONE_TOKEN when the named profile has no credentials', () => {
    const context = resolveContext({ profile: 'empty' }, { CLOUDPHONE_TOKEN: 'cpt_env' }, config);
    expect(context.apiUrl).toBe('https://empty.example.com');
    expect(context.credentials).toEqual({ kind: 'token', token: 'cpt_env' });
  });

  it('gives a profile without a URL the active profile’s server, unless the environment names one', () => {
    const context = resolveContext({ profile: 'new' }, {}, config);
    expect(context.profileName).toBe('new');
    expect(context.apiUrl).toBe('https://work.example.com');
    expect(context.credentials).toEqual({ kind: 'none' });
    expect(resolveContext({}, { CLOUDPHONE_PROFILE: 'new' }, config).apiUrl).toBe('https://work.example.com');
    const env = { CLOUDPHONE_API_URL: 'https://env.example.com' };
    expect(resolveContext({ profile: 'new' }, env, config).apiUrl).toBe('https://env.example.com');
  });

  it('lets --api-url win over everything', () => {
    const env = { CLOUDPHONE_API_URL: 'https://env.example.com' };
    expect(resolveContext({ apiUrl: 'http://flag:1', profile: 'ci' }, env, config).apiUrl).toBe('http://flag:1');
  });

  it('ignores empty environment variables', () => {
    const context = resolveContext({}, { CLOUDPHONE_API_URL: '', CLOUDPHONE_TOKEN: '', CLOUDPHONE_PROFILE: '' }, config);
    expect(context.profileName).toBe('work');
    expect(context.credentials.kind).toBe('session');
  });
});

describe('the config file', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'cloudphone-cli-config-'));
  });
  afterEach(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  it('lives under XDG_CONFIG_HOME when it is absolute', () => {
    expect(configPath({ XDG_CONFIG_HOME: '/xdg' })).toBe('/xdg/cloudphone/config.json');
    expect(configPath({ XDG_CONFIG_HOME: 'relative' })).toMatch(/\.config\/cloudphone\/config\.json$/);
    expect(configPath({})).toMatch(/\.config\/cloudphone\/config\.json$/);
  });

  it('is written with mode 0600 in a 0700 directory, whatever the umask', () => {
    const path = join(dir, 'nested', 'cloudphone', 'config.json');
    const previous = process.umask(0o000);
    try {
      writeConfig(path, config);
    } finally {
      process.umask(previous);
    }
    expect(statSync(path).mode & 0o777).toBe(0o600);
    expect(statSync(join(dir, 'nested', 'cloudphone')).mode & 0o777).toBe(0o700);
    expect(readConfig(path)).toEqual(config);
  });

  it('tightens an existing directory and replaces the file atomically', () => {
    const path = join(dir, 'config.json');
    writeFileSync(path, '{"profiles":{}}', { mode: 0o644 });
    writeConfig(path, config);
    expect(statSync(dir).mode & 0o777).toBe(0o700);
    expect(statSync(path).mode & 0o777).toBe(0o600);
    expect(readdirSync(dir)).toEqual(['config.json']);
  });

  it('reads a missing file as no profiles', () => {
    expect(readConfig(join(dir, 'missing.json'))).toEqual({ profiles: {} });
  });

  it('rejects a file that is not a JSON object', () => {
    const path = join(dir, 'config.json');
    writeFileSync(path, '{not json');
    expect(() => readConfig(path)).toThrow(CliError);
    writeFileSync(path, '[]');
    expect(() => readConfig(path)).toThrow(/must hold a JSON object/);
  });

  it('updates in one step', () => {
    const path = join(dir, 'config.json');
    writeConfig(path, config);
    updateConfig(path, (current) => {
      current.activeProfile = 'ci';
      current.profiles.work = withoutCredentials(current.profiles.work!);
    });
    const written = JSON.parse(readFileSync(path, 'utf8')) as ConfigFile;
    expect(written.activeProfile).toBe('ci');
    expect(written.profiles.work).toEqual({ apiUrl: 'https://work.example.com/', username: 'alice' });
  });
});
