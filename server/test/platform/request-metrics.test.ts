import { describe, expect, it } from 'vitest';
import { RequestMetrics } from '../../src/http/request-metrics.js';

function series(text: string, name: string): string[] {
  return text.split('\n').filter((line) => line.startsWith(name));
}

describe('request metrics', () => {
  it('counts requests per method, route and status, labelled with the node', () => {
    const metrics = new RequestMetrics('node-a');
    metrics.observe('GET', '/v1/users', 200, 0.002);
    metrics.observe('GET', '/v1/users', 200, 0.004);
    metrics.observe('GET', '/v1/users', 400, 0.001);
    metrics.observe('POST', '/v1/users', 201, 0.03);
    expect(series(metrics.render(), 'cloudphone_http_requests_total{')).toEqual([
      'cloudphone_http_requests_total{method="GET",route="/v1/users",status="200",node="node-a"} 2',
      'cloudphone_http_requests_total{method="GET",route="/v1/users",status="400",node="node-a"} 1',
      'cloudphone_http_requests_total{method="POST",route="/v1/users",status="201",node="node-a"} 1',
    ]);
  });

  it('keeps a cumulative latency histogram with sum and count', () => {
    const metrics = new RequestMetrics('node-a');
    for (const seconds of [0.004, 0.02, 0.02, 0.3, 12]) metrics.observe('GET', '/v1/me', 200, seconds);
    const text = metrics.render();
    const bucket = (le: string) =>
      series(text, `cloudphone_http_request_duration_seconds_bucket{le="${le}",method="GET",route="/v1/me",node="node-a"}`)[0]?.split(' ')[1];
    expect([bucket('0.005'), bucket('0.01'), bucket('0.025'), bucket('0.25'), bucket('0.5'), bucket('10'), bucket('+Inf')]).toEqual([
      '1', '1', '3', '3', '4', '4', '5',
    ]);
    expect(series(text, 'cloudphone_http_request_duration_seconds_sum')).toEqual([
      'cloudphone_http_request_duration_seconds_sum{method="GET",route="/v1/me",node="node-a"} 12.344',
    ]);
    expect(series(text, 'cloudphone_http_request_duration_seconds_count')).toEqual([
      'cloudphone_http_request_duration_seconds_count{method="GET",route="/v1/me",node="node-a"} 5',
    ]);
  });

  it('escapes label values and declares both families', () => {
    const metrics = new RequestMetrics('node-a');
    metrics.observe('GET', '/a"b\\c', 404, 0.001);
    const text = metrics.render();
    expect(text).toContain('route="/a\\"b\\\\c"');
    expect(text).toContain('# TYPE cloudphone_http_requests_total counter');
    expect(text).toContain('# TYPE cloudphone_http_request_duration_seconds histogram');
  });
});
