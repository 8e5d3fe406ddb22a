/** The figures the status bar and the System panel show, from a monitoring sample. */

export interface Figures {
  cpu: number | null;
  memory: number | null;
  memoryUsed: number | null;
  memoryTotal: number | null;
  gpus: { index: number; name: string | null; utilization: number | null; memory: number | null }[];
  ts: number;
}

export function figures(sample: any): Figures {
  return {
    cpu: sample?.cpu?.percent ?? null,
    memory: sample?.memory?.percent ?? null,
    memoryUsed: sample?.memory?.used_bytes ?? null,
    memoryTotal: sample?.memory?.total_bytes ?? null,
    gpus: (sample?.gpus ?? []).map((g: any) => ({
      index: g.index,
      name: g.name ?? null,
      utilization: g.utilization_percent ?? null,
      memory: g.memory_percent ?? null
    })),
    ts: sample?.ts ?? Date.now() / 1000
  };
}

/** Firing alerts by id, kept current from `alert` events. */
export class AlertSet {
  private alerts = new Map<string, any>();

  reset(active: any[]): void {
    this.alerts = new Map(active.map(a => [a.id, a]));
  }

  apply(alert: any): void {
    if (alert.state === 'firing' || alert.state === 'pending') {
      this.alerts.set(alert.id, alert);
    } else {
      this.alerts.delete(alert.id);
    }
  }

  get firing(): any[] {
    return [...this.alerts.values()].filter(a => a.state === 'firing');
  }

  get all(): any[] {
    return [...this.alerts.values()];
  }
}
