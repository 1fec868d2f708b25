/** The methods each registered route path answers, to tell an unknown path (404) from a wrong method (405). */
export class AllowedMethods {
  readonly #routes = new Map<string, { pattern: RegExp; methods: Set<string> }>();

  /** Records a route as Fastify registers it (from an `onRoute` hook): `/v1/users/:userId`. */
  add(url: string, methods: string | readonly string[]): void {
    let route = this.#routes.get(url);
    if (!route) {
      const segments = url
        .split('/')
        .map((s) => (s.startsWith(':') ? '[^/]+' : s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')));
      route = { pattern: new RegExp(`^${segments.join('/')}$`), methods: new Set() };
      this.#routes.set(url, route);
    }
    for (const method of typeof methods === 'string' ? [methods] : methods) route.methods.add(method);
  }

  /** The methods routed for a concrete path, sorted; empty when no route matches it. */
  for(path: string): string[] {
    const methods = new Set<string>();
    for (const route of this.#routes.values()) {
      if (route.pattern.test(path)) for (const m of route.methods) methods.add(m);
    }
    return [...methods].sort();
  }
}
