/**
 * The status bar item (CPU, memory, GPU, firing alerts; a click opens the System panel)
 * and the System panel: live charts of the last minutes, the cluster jobs run on (when
 * not local) and the alert list.
 */
import { Widget } from '@lumino/widgets';
import { Notebench } from '../context';
import { ClusterFeed } from '../model/cluster';
import { formatBytes, formatPercent } from '../model/format';
import { AlertSet, figures, Figures } from '../model/monitoring';
import { SeriesSet } from '../model/series';
import { StreamEvent } from '../stream/connection';
import { LineChart } from './chart';
import { renderCluster } from './cluster';
import { connectionBadge } from './connection';
import { button, fill, h } from './dom';

const WINDOW_SECONDS = 600;
/** The cluster is re-read on the samples' cadence, at most this often (ms). */
const CLUSTER_REFRESH_MS = 5000;

/** Samples and alerts for the status bar and the System panel (one subscription). */
export class SystemModel {
  latest: Figures | null = null;
  alerts = new AlertSet();
  private listeners = new Set<(event: 'sample' | 'alerts') => void>();
  private dispose: () => void;

  constructor(private nb: Notebench) {
    this.dispose = nb.hub.subscribe(['monitoring', 'alerts'], {
      onEvent: event => this.onEvent(event),
      refetch: () => void this.loadAlerts()
    });
  }

  onChange(listener: (event: 'sample' | 'alerts') => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  close(): void {
    this.dispose();
  }

  private onEvent(event: StreamEvent): void {
    if (event.type === 'sample') {
      this.latest = figures(event.data);
      this.emit('sample');
    } else if (event.type === 'alert') {
      this.alerts.apply(event.data);
      this.emit('alerts');
    }
  }

  private async loadAlerts(): Promise<void> {
    try {
      const answer = await this.nb.api.get<{ active: any[] }>('monitoring/alerts');
      this.alerts.reset(answer.active);
      this.emit('alerts');
    } catch {
      // the alert list stays as it was; the stream keeps it current
    }
  }

  private emit(event: 'sample' | 'alerts'): void {
    this.listeners.forEach(l => l(event));
  }
}

export class StatusItem extends Widget {
  private disposers: (() => void)[] = [];

  constructor(private nb: Notebench, private model: SystemModel) {
    super();
    this.addClass('nb-status');
    this.node.dir = nb.dir;
    this.node.title = nb.trans.__('notebench: system use (click for the System panel)');
    this.node.setAttribute('role', 'button');
    this.node.tabIndex = 0;
    this.node.addEventListener('click', () => nb.openSystem());
    this.disposers.push(model.onChange(() => this.render()));
    this.disposers.push(nb.hub.onStateChange(() => this.render()));
    this.render();
  }

  dispose(): void {
    this.disposers.forEach(d => d());
    super.dispose();
  }

  private render(): void {
    const trans = this.nb.trans;
    const f = this.model.latest;
    const firing = this.model.alerts.firing.length;
    const parts: (HTMLElement | string)[] = [];
    if (this.nb.hub.connectionState !== 'open') {
      parts.push(h('span', { class: 'nb-status-reconnecting' }, trans.__('notebench: reconnecting…')));
    }
    if (f) {
      this.node.dataset.sampleTs = String(f.ts);
      parts.push(
        h('span', { class: 'nb-status-cpu' }, trans.__('CPU %1', formatPercent(f.cpu))),
        h('span', { class: 'nb-status-mem' }, trans.__('Mem %1', formatPercent(f.memory)))
      );
      for (const gpu of f.gpus) {
        parts.push(h('span', { class: 'nb-status-gpu' }, trans.__('GPU%1 %2', gpu.index, formatPercent(gpu.utilization))));
      }
    }
    if (firing) {
      parts.push(h('span', { class: 'nb-status-alerts', title: trans.__('Firing alerts') }, `⚠ ${firing}`));
    }
    fill(this.node, parts);
  }
}

export class SystemPanel extends Widget {
  private cpu = new LineChart({ title: 'CPU %', xTime: true, height: 160, yRange: [0, 100] });
  private memory = new LineChart({ title: 'Memory %', xTime: true, height: 160, yRange: [0, 100] });
  private gpu = new LineChart({ title: 'GPU %', xTime: true, height: 160, yRange: [0, 100] });
  private series = new SeriesSet(WINDOW_SECONDS * 2);
  private facts = h('div', { class: 'nb-facts' });
  private alertsBox = h('div', { class: 'nb-alerts' });
  private gpuBox = h('section', { class: 'nb-section' });
  private clusterBox = h('section', { class: 'nb-section nb-cluster', hidden: true });
  private cluster: ClusterFeed;
  private disposers: (() => void)[] = [];
  private drawTimer: ReturnType<typeof setTimeout> | null = null;

  constructor(private nb: Notebench, private model: SystemModel) {
    super();
    const trans = nb.trans;
    this.id = 'notebench-system';
    this.addClass('nb-panel');
    this.node.dir = nb.dir;
    this.addClass('nb-system');
    this.title.label = trans.__('System');
    this.title.closable = true;
    const badge = connectionBadge(nb);
    this.disposers.push(badge.dispose);
    this.gpuBox.append(this.gpu.node);
    this.gpuBox.hidden = true;
    this.cluster = new ClusterFeed(() => nb.api.cluster(), CLUSTER_REFRESH_MS);
    this.node.append(
      h('header', { class: 'nb-panel-header' }, h('h2', {}, trans.__('System')), badge.node, this.facts),
      h('section', { class: 'nb-section nb-cpu' }, this.cpu.node),
      h('section', { class: 'nb-section nb-memory' }, this.memory.node),
      this.gpuBox,
      this.clusterBox,
      h('section', { class: 'nb-section' }, h('h3', {}, trans.__('Alerts')), this.alertsBox)
    );
    this.disposers.push(
      model.onChange(event => (event === 'sample' ? this.addSample() : this.renderAlerts()))
    );
    // after a reconnection the server may be another one: read the cluster afresh
    let state = nb.hub.connectionState;
    this.disposers.push(nb.hub.onStateChange(next => {
      if (next === 'open' && state !== 'open') {
        void this.refreshCluster(true);
      }
      state = next;
    }));
    void this.loadHistory();
    void this.refreshCluster(true);
    this.renderAlerts();
  }

  dispose(): void {
    this.disposers.forEach(d => d());
    [this.cpu, this.memory, this.gpu].forEach(c => c.dispose());
    if (this.drawTimer !== null) {
      clearTimeout(this.drawTimer);
    }
    super.dispose();
  }

  private async loadHistory(): Promise<void> {
    try {
      const answer = await this.nb.api.get<{ series: { name: string; labels: Record<string, string>; t: number[]; value: (number | null)[] }[] }>(
        'monitoring/metrics',
        { names: 'cpu_percent,memory_percent,gpu_utilization_percent', since: -WINDOW_SECONDS, max_points: 600 }
      );
      for (const s of answer.series) {
        const key = s.name === 'gpu_utilization_percent' ? `GPU ${s.labels.gpu ?? s.labels.index ?? ''}`.trim() : s.name;
        s.t.forEach((t, i) => {
          const v = s.value[i];
          if (v !== null) {
            this.series.add(key, t, v);
          }
        });
      }
    } catch {
      // live samples fill the charts
    }
    this.draw();
  }

  /** Read the cluster (`force`), or again on the samples' cadence while shown. */
  private async refreshCluster(force = false): Promise<void> {
    if (!force && !this.isVisible) {
      return;
    }
    const answered = await (force ? this.cluster.load() : this.cluster.tick());
    if (answered && !this.isDisposed) {
      renderCluster(this.clusterBox, this.nb.trans, this.cluster.cluster,
        id => this.nb.jobs.get(id)?.name || id);
    }
  }

  private addSample(): void {
    void this.refreshCluster();
    const f = this.model.latest;
    if (!f) {
      return;
    }
    if (f.cpu !== null) {
      this.series.add('cpu_percent', f.ts, f.cpu);
    }
    if (f.memory !== null) {
      this.series.add('memory_percent', f.ts, f.memory);
    }
    for (const gpu of f.gpus) {
      if (gpu.utilization !== null) {
        this.series.add(`GPU ${gpu.index}`, f.ts, gpu.utilization);
      }
    }
    const trans = this.nb.trans;
    fill(this.facts,
      h('span', { class: 'nb-fact' }, h('b', {}, trans.__('CPU')), ' ', formatPercent(f.cpu)),
      h('span', { class: 'nb-fact' }, h('b', {}, trans.__('Memory')), ' ',
        `${formatBytes(f.memoryUsed)} / ${formatBytes(f.memoryTotal)}`),
      f.gpus.map(g => h('span', { class: 'nb-fact' }, h('b', {}, `GPU ${g.index}`), ' ', formatPercent(g.utilization)))
    );
    if (this.drawTimer === null && this.isVisible) {
      this.drawTimer = setTimeout(() => {
        this.drawTimer = null;
        this.draw();
      }, 200);
    }
  }

  private draw(): void {
    this.cpu.setData(this.series.columns(['cpu_percent']));
    this.memory.setData(this.series.columns(['memory_percent']));
    const gpus = this.series.names.filter(n => n.startsWith('GPU'));
    this.gpuBox.hidden = !gpus.length;
    if (gpus.length) {
      this.gpu.setData(this.series.columns(gpus));
    }
  }

  private renderAlerts(): void {
    const trans = this.nb.trans;
    const alerts = this.model.alerts.all;
    fill(this.alertsBox, alerts.length
      ? h('ul', { class: 'nb-alert-list' }, alerts.map(a =>
          h('li', { class: `nb-alert nb-severity-${a.severity} nb-alert-${a.state}` },
            h('span', { class: 'nb-badge' }, trans.__(a.state)), ' ',
            h('b', {}, a.rule), ' ', a.message, ' ',
            a.state === 'firing' && !a.acknowledged
              ? button(trans.__('Acknowledge'), () => void this.nb.api.post(`monitoring/alerts/${a.id}/ack`).catch(() => undefined), { kind: 'accept' })
              : null)))
      : h('p', { class: 'nb-empty' }, trans.__('No active alerts.')));
  }
}
