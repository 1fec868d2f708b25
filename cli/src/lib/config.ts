import { randomBytes } from 'node:crypto';
import { chmodSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, isAbsolute, join } from 'node:path';
import { CliError, ExitCode } from './errors.js';

export const DEFAULT_API_URL = 'http://127.0.0.1:8080';
export const DEFAULT_PROFILE = 'default';

/** One named server + credentials. A profile holds either an API token or a login session. */
export interface Profile {
  apiUrl?: string;
  username?: string;
  /** An API token (`cpt_…`). */
  token?: string;
  accessToken?: string;
  refreshToken?: string;
  accessTokenExpiresAt?: string;
}

export interface ConfigFile {
  activeProfile?: string;
  profiles: Record<string, Profile>;
}

export type Env = Record<string, string | undefined>;

/** `$XDG_CONFIG_HOME/cloudphone/config.json`, `~/.config/cloudphone/config.json` without it (or when relative). */
export function configPath(env: Env = process.env): string {
  const xdg = env.XDG_CONFIG_HOME;
  const base = xdg && isAbsolute(xdg) ? xdg : join(homedir(), '.config');
  return join(base, 'cloudphone', 'config.json');
}

export function readConfig(path: string): ConfigFile {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return { profiles: {} };
    throw error;
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (error) {
    throw new CliError(`${path} is not valid JSON: ${(error as Error).message}`, 'invalid_config', ExitCode.error);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new CliError(`${path} must hold a JSON object`, 'invalid_config', ExitCode.error);
  }
  const config = parsed as Partial<ConfigFile>;
  const profiles = config.profiles && typeof config.profiles === 'object' ? config.profiles : {};
  return config.activeProfile === undefined ? { profiles } : { activeProfile: config.activeProfile, profiles };
}

/**
 * Writes the file atomically (a sibling temp file renamed over it), readable by its owner only:
 * the directory is 0700 and the file 0600, whatever the umask.
 */
export function writeConfig(path: string, config: ConfigFile): void {
  const dir = dirname(path);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  chmodSync(dir, 0o700);
  const temp = join(dir, `.config.json.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
  try {
    writeFileSync(temp, `${JSON.stringify(config, null, 2)}\n`, { mode: 0o600, flag: 'wx' });
    chmodSync(temp, 0o600);
    renameSync(temp, path);
  } catch (error) {
    rmSync(temp, { force: true });
    throw error;
  }
}

/** Reads, changes and writes the file in one step. */
export function updateConfig(path: string, change: (config: ConfigFile) => void): ConfigFile {
  const config = readConfig(path);
  change(config);
  writeConfig(path, config);
  return config;
}

export type Credentials =
  | { kind: 'token'; token: string }
  | { kind: 'session'; accessToken: string; refreshToken: string }
  | { kind: 'none' };

/** Where a command talks to and as whom. */
export interface Context {
  profileName: string;
  profile: Profile;
  apiUrl: string;
  credentials: Credentials;
}

export interface ContextFlags {
  apiUrl?: string | undefined;
  profile?: string | undefined;
}

/**
 * Resolution order: flag, then environment, then the profile. The profile is `--profile`, else
 * `CLOUDPHONE_PROFILE`, else the active profile. Naming a profile with `--profile` is a flag too, so its URL
 * and credentials then win over `CLOUDPHONE_API_URL` and `CLOUDPHONE_TOKEN`; `--api-url` wins over everything.
 * A profile without a URL (a new one that `login --profile` is about to create) uses the active profile's server,
 * so a second account on the same server needs no `--api-url`.
 */
export function resolveContext(flags: ContextFlags, env: Env, config: ConfigFile): Context {
  const profileName = flags.profile ?? nonEmpty(env.CLOUDPHONE_PROFILE) ?? config.activeProfile ?? DEFAULT_PROFILE;
  const profile = config.profiles[profileName] ?? {};
  const profileWins = flags.profile !== undefined;
  const envUrl = nonEmpty(env.CLOUDPHONE_API_URL);
  const envToken = nonEmpty(env.CLOUDPHONE_TOKEN);
  const activeUrl = config.activeProfile === undefined ? undefined : config.profiles[config.activeProfile]?.apiUrl;

  const apiUrl =
    flags.apiUrl ??
    (profileWins ? (profile.apiUrl ?? envUrl) : (envUrl ?? profile.apiUrl)) ??
    activeUrl ??
    DEFAULT_API_URL;

  const fromProfile = profileCredentials(profile);
  let credentials: Credentials;
  if (envToken && !(profileWins && fromProfile.kind !== 'none')) {
    credentials = { kind: 'token', token: envToken };
  } else {
    credentials = fromProfile;
  }
  return { profileName, profile, apiUrl: stripSlash(apiUrl), credentials };
}

export function profileCredentials(profile: Profile): Credentials {
  if (profile.accessToken && profile.refreshToken) {
    return { kind: 'session', accessToken: profile.accessToken, refreshToken: profile.refreshToken };
  }
  if (profile.token) return { kind: 'token', token: profile.token };
  return { kind: 'none' };
}

/** Removes the credentials of a profile, keeping its URL and username. */
export function withoutCredentials(profile: Profile): Profile {
  const { token: _token, accessToken: _access, refreshToken: _refresh, accessTokenExpiresAt: _expiry, ...rest } =
    profile;
  return rest;
}

function nonEmpty(value: string | undefined): string | undefined {
  return value === undefined || value === '' ? undefined : value;
}

function stripSlash(url: string): string {
  return url.replace(/\/+$/, '');
}
