// Baselines for the API benchmark: Fastify with one JSON route and no logger, or (with --logged) with Fastify's
// default request logging to standard output, which is what any server that logs its requests pays.
import Fastify from 'fastify';

const port = Number(process.argv[2]);
const logged = process.argv.includes('--logged');
const app = Fastify({ logger: logged ? { level: 'info' } : false });
app.get('/', async () => ({ hello: 'world' }));
await app.listen({ host: '127.0.0.1', port });
process.on('SIGTERM', () => app.close().then(() => process.exit(0)));
