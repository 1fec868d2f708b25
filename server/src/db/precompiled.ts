import type { CompiledQuery, Kysely } from 'kysely';
import { engineOf, type Engine } from './dialect.js';

interface Compilable<Row> {
  compile(): CompiledQuery<Row>;
}

/**
 * A query that Kysely builds and compiles once per engine, on first use, and then runs with new argument values. Building and
 * compiling otherwise happen on every call and cost several times more than SQLite's own work for a lookup by
 * index, which matters for the lookups made on every request. The SQL still comes from Kysely's compiler, so the
 * query stays as portable between dialects as any other.
 *
 * `build` must use each argument exactly once as a query parameter (a value in `where`, `values`, …), not to choose
 * the query's shape: it runs once, with placeholders.
 */
export function precompiled<D, Args extends unknown[], Row>(
  build: (db: Kysely<D>, ...args: Args) => Compilable<Row>,
): (db: Kysely<D>, ...args: Args) => Promise<Row[]> {
  const compiledFor = new Map<Engine, { query: CompiledQuery<Row>; slots: number[] }>();
  return async (db, ...args) => {
    const engine = engineOf(db);
    let compiled = compiledFor.get(engine);
    if (compiled === undefined) {
      const placeholders = args.map((_, i) => `\u0000precompiled argument ${i}\u0000`);
      const query = build(db, ...(placeholders as Args)).compile();
      const slots = placeholders.map((placeholder, i) => {
        const slot = query.parameters.indexOf(placeholder);
        if (slot < 0 || query.parameters.lastIndexOf(placeholder) !== slot) {
          throw new Error(`precompiled query must use argument ${i} exactly once as a parameter: ${query.sql}`);
        }
        return slot;
      });
      compiled = { query, slots };
      compiledFor.set(engine, compiled);
    }
    const parameters = [...compiled.query.parameters];
    compiled.slots.forEach((slot, i) => {
      parameters[slot] = args[i];
    });
    return (await db.executeQuery<Row>({ ...compiled.query, parameters })).rows;
  };
}
