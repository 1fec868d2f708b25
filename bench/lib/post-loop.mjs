// Baseline for the webhook-delivery benchmark: plain node:http POSTs of a given size, the floor of this machine for
// "send a small JSON body to a local receiver" without a queue, a database or signing. Prints its timings as JSON.
//   node post-loop.mjs '{"urls": [...], "bodyBytes": 600, "count": 300, "workersPerUrl": [4, 4, 3, …], "fresh": true}'
// `count` requests per URL; each URL has its own workers, one request in flight each; `fresh`: a new connection
// per request (`agent: false`), as the webhook dispatcher opens one per attempt; otherwise keep-alive.
import { Agent, request } from 'node:http';

const { urls, bodyBytes, count, workersPerUrl, fresh } = JSON.parse(process.argv[2]);
const body = Buffer.alloc(bodyBytes, 'x');
const agent = fresh ? false : new Agent({ keepAlive: true, maxSockets: Math.max(...workersPerUrl) });

function post(url, id) {
  return new Promise((resolve, reject) => {
    const req = request(url, {
      method: 'POST',
      agent,
      headers: {
        'content-type': 'application/json',
        'content-length': body.length,
        'webhook-id': id,
        'webhook-timestamp': String(Math.floor(Date.now() / 1000)),
        'webhook-signature': `v1,${'A'.repeat(44)}`,
      },
    });
    req.once('error', reject);
    req.once('response', (res) => {
      res.resume();
      res.once('end', () => (res.statusCode >= 200 && res.statusCode < 300 ? resolve() : reject(new Error(`status ${res.statusCode}`))));
    });
    req.end(body);
  });
}

const latencies = [];
const started = performance.now();
await Promise.all(
  urls.map(async (url, u) => {
    let next = 0;
    await Promise.all(
      Array.from({ length: workersPerUrl[u] }, async () => {
        while (next < count) {
          const i = next++;
          const sent = performance.now();
          await post(url, `base-${u}-${i}`);
          latencies.push(performance.now() - sent);
        }
      }),
    );
  }),
);
const elapsedMs = performance.now() - started;
process.stdout.write(JSON.stringify({ elapsedMs, latencies }));
if (!fresh) agent.destroy();
