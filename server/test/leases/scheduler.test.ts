import { describe, expect, it } from 'vitest';
import { schedule, type SchedulableDevice } from '../../src/leases/scheduler.js';

function device(id: string, fields: Partial<SchedulableDevice> = {}): SchedulableDevice {
  return {
    id,
    hostId: 'hst_1',
    kind: 'physical',
    model: 'Pixel 8',
    sdk: 34,
    abis: ['arm64-v8a'],
    labels: {},
    available: true,
    lastLeasedAt: null,
    ...fields,
  };
}

describe('schedule', () => {
  it('grants in creation order, all-or-nothing, least recently leased first', () => {
    const devices = [
      device('d1', { lastLeasedAt: '2026-01-02T00:00:00.000Z' }),
      device('d2', { lastLeasedAt: '2026-01-01T00:00:00.000Z' }),
      device('d3'),
      device('d4', { available: false }),
    ];
    expect(
      schedule(
        [
          { id: 'l1', selector: {}, count: 2 },
          { id: 'l2', selector: {}, count: 2 },
          { id: 'l3', selector: {}, count: 1 },
        ],
        devices,
      ),
    ).toEqual([{ leaseId: 'l1', deviceIds: ['d3', 'd2'] }]);
  });

  it('an earlier blocked lease reserves its matches; later leases for other devices backfill', () => {
    const devices = [device('p1'), device('g1', { model: 'Galaxy' }), device('g2', { model: 'Galaxy' })];
    expect(
      schedule(
        [
          { id: 'l1', selector: { model: 'Pixel 8' }, count: 2 },
          { id: 'l2', selector: {}, count: 1 },
          { id: 'l3', selector: { model: 'Pixel 8' }, count: 1 },
          { id: 'l4', selector: { model: 'Galaxy' }, count: 1 },
        ],
        devices,
      ),
    ).toEqual([
      { leaseId: 'l2', deviceIds: ['g1'] },
      { leaseId: 'l4', deviceIds: ['g2'] },
    ]);
  });
});
