// Baseline for the app-upload benchmark: a plain node:http server that streams each POST body to a new file while
// hashing it (SHA-256), answers the digest and size as JSON, and removes the file. The floor of this machine for
// "receive an upload into a file and hash it" without any framework, auth, database or parsing.
import { createHash, randomUUID } from 'node:crypto';
import { createWriteStream, mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { Transform } from 'node:stream';

const port = Number(process.argv[2]);
const dir = mkdtempSync(join(tmpdir(), 'cloudphone-bench-sink-'));
const server = createServer((req, res) => {
  if (req.method === 'GET') return void res.end('ok');
  const hash = createHash('sha256');
  let size = 0;
  const file = join(dir, randomUUID());
  const tap = new Transform({
    transform(chunk, _encoding, callback) {
      hash.update(chunk);
      size += chunk.length;
      callback(null, chunk);
    },
  });
  pipeline(req, tap, createWriteStream(file)).then(
    () => {
      rmSync(file, { force: true });
      res.writeHead(201, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ sha256: hash.digest('hex'), size }));
    },
    (error) => {
      rmSync(file, { force: true });
      res.writeHead(500);
      res.end(String(error));
    },
  );
});
server.listen(port, '127.0.0.1');
process.on('SIGTERM', () => {
  server.close();
  rmSync(dir, { recursive: true, force: true });
  process.exit(0);
});
