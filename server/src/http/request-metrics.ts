/** prom-client's default latency buckets, in seconds. */
const BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

interface Series {
  method: string;
  route: string;
  /** Requests by status code. */
  statuses: Map<number, number>;
  /** Cumulative counts per bucket upper bound, then +Inf. */
  buckets: number[];
  sum: number;
  count: number;
}

function label(value: string): string {
  return value.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');
}

function number(value: number): string {
  return Number.isInteger(value) ? String(value) : String(Math.round(value * 1e9) / 1e9);
}

/**
 * The request counter and latency histogram, kept as plain numbers per (method, route) and written in the
 * Prometheus text format when scraped, every line labelled with the node's name last (as prom-client places its
 * default labels). Recording is a map lookup and a few additions; a general metrics library costs more per request
 * than the rest of a short request's work together.
 */
export class RequestMetrics {
  readonly #series = new Map<string, Series>();
  readonly #node: string;

  constructor(node: string) {
    this.#node = `node="${label(node)}"`;
  }

  observe(method: string, route: string, status: number, seconds: number): void {
    const key = `${method} ${route}`;
    let series = this.#series.get(key);
    if (series === undefined) {
      series = { method, route, statuses: new Map(), buckets: new Array<number>(BUCKETS.length + 1).fill(0), sum: 0, count: 0 };
      this.#series.set(key, series);
    }
    series.statuses.set(status, (series.statuses.get(status) ?? 0) + 1);
    for (let i = 0; i < BUCKETS.length; i++) if (seconds <= BUCKETS[i]!) series.buckets[i]!++;
    series.buckets[BUCKETS.length]!++;
    series.sum += seconds;
    series.count++;
  }

  /** The two metric families in the Prometheus text exposition format. */
  render(): string {
    const all = [...this.#series.values()].sort((a, b) => `${a.route} ${a.method}`.localeCompare(`${b.route} ${b.method}`));
    const lines = [
      '# HELP cloudphone_http_requests_total HTTP requests answered, by method, route and status.',
      '# TYPE cloudphone_http_requests_total counter',
    ];
    for (const s of all) {
      for (const [status, count] of [...s.statuses].sort((a, b) => a[0] - b[0])) {
        lines.push(
          `cloudphone_http_requests_total{method="${label(s.method)}",route="${label(s.route)}",status="${status}",${this.#node}} ${count}`,
        );
      }
    }
    lines.push(
      '# HELP cloudphone_http_request_duration_seconds Time to answer HTTP requests, by method and route.',
      '# TYPE cloudphone_http_request_duration_seconds histogram',
    );
    for (const s of all) {
      const labels = `method="${label(s.method)}",route="${label(s.route)}",${this.#node}`;
      BUCKETS.forEach((le, i) => lines.push(`cloudphone_http_request_duration_seconds_bucket{le="${le}",${labels}} ${s.buckets[i]}`));
      lines.push(`cloudphone_http_request_duration_seconds_bucket{le="+Inf",${labels}} ${s.buckets[BUCKETS.length]}`);
      lines.push(`cloudphone_http_request_duration_seconds_sum{${labels}} ${number(s.sum)}`);
      lines.push(`cloudphone_http_request_duration_seconds_count{${labels}} ${s.count}`);
    }
    return `${lines.join('\n')}\n`;
  }
}
