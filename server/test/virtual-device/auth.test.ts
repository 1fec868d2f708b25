import { randomBytes } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import {
  AdbKeyError,
  AuthType,
  Command,
  parseAdbPublicKey,
  TOKEN_SIZE,
  verifyAdbSignature,
} from '../../src/adb-protocol/index.js';
import { startVirtualDevice, type VirtualDevice } from '../../src/virtual-device/daemon.js';
import { defaultProfile } from '../../src/virtual-device/profile.js';
import { generateAdbKeyPair, signToken } from '../helpers/adb-keys.js';
import { TestHost } from '../helpers/test-host.js';

const trusted = generateAdbKeyPair();
const stranger = generateAdbKeyPair();

describe('adb public keys', () => {
  it('converts the adbkey.pub format to the same RSA key', () => {
    const key = parseAdbPublicKey(trusted.publicKey);
    expect(key.asymmetricKeyType).toBe('rsa');
    expect(key.export({ format: 'jwk' })).toEqual(
      expect.objectContaining({ n: trusted.privateKey.export({ format: 'jwk' }).n, e: 'AQAB' }),
    );
  });

  it('verifies a token signed the way adb signs it, and nothing else', () => {
    const key = parseAdbPublicKey(trusted.publicKey);
    const token = randomBytes(TOKEN_SIZE);
    expect(verifyAdbSignature(key, token, signToken(trusted.privateKey, token))).toBe(true);
    expect(verifyAdbSignature(key, randomBytes(TOKEN_SIZE), signToken(trusted.privateKey, token))).toBe(false);
    expect(verifyAdbSignature(key, token, signToken(stranger.privateKey, token))).toBe(false);
    expect(verifyAdbSignature(key, token, Buffer.from('not a signature'))).toBe(false);
  });

  it('rejects malformed keys', () => {
    expect(() => parseAdbPublicKey('')).toThrow(AdbKeyError);
    expect(() => parseAdbPublicKey(Buffer.alloc(64).toString('base64'))).toThrow(AdbKeyError);
  });
});

describe('AUTH on the transport', () => {
  let device: VirtualDevice;
  let host: TestHost;

  afterEach(async () => {
    host?.close();
    await device.close();
  });

  it('asks for a signature, answers a wrong one with a new token and a right one with CNXN', async () => {
    device = await startVirtualDevice({
      profile: defaultProfile(0),
      auth: { authorizedKeys: [trusted.publicKey] },
    });
    const connected = await TestHost.connect(device.port);
    host = connected.host;
    const first = connected.reply;
    expect(first).toMatchObject({ command: Command.AUTH, arg0: AuthType.TOKEN, arg1: 0 });
    expect(first.data).toHaveLength(TOKEN_SIZE);

    host.send(Command.AUTH, AuthType.SIGNATURE, 0, signToken(stranger.privateKey, first.data));
    const second = await host.next();
    expect(second).toMatchObject({ command: Command.AUTH, arg0: AuthType.TOKEN });
    expect(second.data.equals(first.data)).toBe(false);

    host.send(Command.AUTH, AuthType.SIGNATURE, 0, signToken(trusted.privateKey, second.data));
    const accepted = await host.next();
    expect(accepted.command).toBe(Command.CNXN);
    expect(accepted.data.toString()).toMatch(/^device::/);
    expect(await host.open(1, 'shell:echo ok')).toBeDefined();
  });

  it('keeps a host that offers an unknown public key unauthorised and its OPENs unanswered', async () => {
    device = await startVirtualDevice({ profile: defaultProfile(0), auth: { authorizedKeys: [] } });
    const connected = await TestHost.connect(device.port);
    host = connected.host;
    expect(connected.reply).toMatchObject({ command: Command.AUTH, arg0: AuthType.TOKEN });
    host.send(Command.AUTH, AuthType.RSAPUBLICKEY, 0, Buffer.from(`${stranger.publicKey}\0`));
    host.send(Command.OPEN, 1, 0, Buffer.from('shell:echo no\0'));
    host.send(Command.AUTH, AuthType.SIGNATURE, 0, signToken(stranger.privateKey, connected.reply.data));
    // The only answer is a new token for the signature: nothing for the key or the OPEN before it.
    expect(await host.next()).toMatchObject({ command: Command.AUTH, arg0: AuthType.TOKEN });
  });
});
