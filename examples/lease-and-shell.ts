/**
 * A CI step on a leased device: lease one (queuing up to two minutes), run a command, push a file, pull it back,
 * take a screenshot, and release the lease, also when a step fails or the job is interrupted (Ctrl-C).
 *
 *   CLOUDPHONE_API_URL=http://127.0.0.1:8080 CLOUDPHONE_TOKEN=<member token> npx tsx examples/lease-and-shell.ts [kind]
 *
 * Prints one JSON object per step on stdout. `kind` (physical, emulator, network, virtual) narrows the devices.
 */
import { CloudPhone, LeaseNotGrantedError, type DeviceKind } from '@cloudphone/sdk';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const kind = process.argv[2] as DeviceKind | undefined;
const cp = new CloudPhone();
const workDir = mkdtempSync(join(tmpdir(), 'cloudphone-example-'));

try {
  await cp.leases.use(
    { selector: kind ? { kind } : {}, ttlSeconds: 300, waitSeconds: 120, note: 'examples/lease-and-shell' },
    async (lease) => {
      const device = lease.devices[0]!;
      console.log(JSON.stringify({ step: 'lease', id: lease.id, device: device.id, serial: device.serial, expiresAt: lease.expiresAt }));

      const model = await device.shell(['getprop', 'ro.product.model']);
      console.log(JSON.stringify({ step: 'shell', exitCode: model.exitCode, model: model.stdout.trim() }));

      const local = join(workDir, 'fixture.bin');
      const bytes = randomBytes(64 * 1024);
      writeFileSync(local, bytes);
      const pushed = await device.push(local, '/data/local/tmp/fixture.bin'); // streamed from disk
      const copy = join(workDir, 'fixture.copy.bin');
      const pulled = await device.pullTo('/data/local/tmp/fixture.bin', copy);
      const identical = readFileSync(copy).equals(bytes);
      console.log(JSON.stringify({ step: 'files', pushed: pushed.size, pulled, identical }));
      if (!identical) throw new Error('the pulled file differs from the pushed one');

      const png = await device.screenshot();
      console.log(JSON.stringify({ step: 'screenshot', bytes: png.byteLength }));
    },
  );
  console.log(JSON.stringify({ step: 'released' }));
} catch (error) {
  if (error instanceof LeaseNotGrantedError) {
    process.stderr.write(`no device became free in time (lease ${error.lease.id} ${error.status})\n`);
    process.exitCode = 1;
  } else {
    throw error;
  }
} finally {
  rmSync(workDir, { recursive: true, force: true });
}
