/**
 * One job in the main area: its facts and controls, live metric charts, the log tail that
 * follows, the executed notebook as it stands (read-only), artifacts with download links
 * and the model with its load snippet. Follows the `job:<id>` topic.
 */
import { Widget } from '@lumino/widgets';
import { attempt, Notebench } from '../context';
import { formatBytes, formatDuration, formatMetric } from '../model/format';
import { liveDuration, progressFraction } from '../model/jobs';
import { groupMetrics, SeriesSet } from '../model/series';
import { Job, Series, TERMINAL_STATES } from '../model/types';
import { StreamEvent } from '../stream/connection';
import { LineChart } from './chart';
import { runsOnFact } from './cluster';
import { connectionBadge } from './connection';
import { button, controlKind, fill, h } from './dom';

const MAX_LOG_LINES = 2000;

export class JobView extends Widget {
  private job: Job | null = null;
  private header = h('div', { class: 'nb-jobview-header' });
  private chartsBox = h('div', { class: 'nb-charts' });
  private logBox = h('pre', { class: 'nb-log', tabindex: 0 });
  private outputBox = h('div', { class: 'nb-output' });
  private artifactsBox = h('div', { class: 'nb-artifacts' });
  private modelBox = h('div', { class: 'nb-model' });
  private series = new SeriesSet();
  private counters = new Map<string, number>();
  private charts = new Map<string, LineChart>();
  private chartTimer: ReturnType<typeof setTimeout> | null = null;
  private outputTimer: ReturnType<typeof setInterval> | null = null;
  private disposers: (() => void)[] = [];
  // a running job's duration ticks every second from when its record was read
  private durationEl: HTMLElement | null = null;
  private readAt = Date.now();

  constructor(private nb: Notebench, readonly jobId: string) {
    super();
    const trans = nb.trans;
    this.id = `notebench-job-${jobId}`;
    this.addClass('nb-panel');
    this.node.dir = nb.dir;
    this.addClass('nb-jobview');
    this.title.label = jobId;
    this.title.closable = true;
    const badge = connectionBadge(nb);
    this.disposers.push(badge.dispose);
    const section = (title: string, cls: string, body: HTMLElement) =>
      h('section', { class: `nb-section ${cls}` }, h('h3', {}, title), body);
    this.node.append(
      h('div', { class: 'nb-jobview-top' }, this.header, badge.node),
      section(trans.__('Metrics'), 'nb-section-metrics', this.chartsBox),
      section(trans.__('Log'), 'nb-section-log', this.logBox),
      section(trans.__('Model'), 'nb-section-model', this.modelBox),
      section(trans.__('Artifacts'), 'nb-section-artifacts', this.artifactsBox),
      section(trans.__('Output notebook'), 'nb-section-output', this.outputBox)
    );
    this.disposers.push(
      nb.hub.subscribe([`job:${jobId}`], {
        onEvent: event => this.onEvent(event),
        refetch: () => void this.load()
      })
    );
    const ticker = setInterval(() => this.tickDuration(), 1000);
    this.disposers.push(() => clearInterval(ticker));
  }

  private tickDuration(): void {
    if (this.job?.state === 'running' && this.durationEl && this.isVisible) {
      this.durationEl.textContent = formatDuration(liveDuration(this.job, this.readAt, Date.now()));
    }
  }

  dispose(): void {
    this.disposers.forEach(d => d());
    this.charts.forEach(c => c.dispose());
    if (this.chartTimer !== null) {
      clearTimeout(this.chartTimer);
    }
    if (this.outputTimer !== null) {
      clearInterval(this.outputTimer);
    }
    super.dispose();
  }

  /** Read everything over REST (first view, or after a reset). */
  private async load(): Promise<void> {
    const api = this.nb.api;
    const id = this.jobId;
    const job = await attempt(this.nb, this.nb.trans.__('Could not read the job'), () =>
      api.get<Job>(`lifecycle/jobs/${id}`)
    );
    if (!job || this.isDisposed) {
      return;
    }
    this.setJob(job);
    const [metrics, logs] = await Promise.all([
      api.get<{ series: Series[] }>(`lifecycle/jobs/${id}/metrics`, {
        max_points: this.nb.settings.chartPoints
      }).catch(() => ({ series: [] as Series[] })),
      api.get<{ records: { id: number; message: string }[] }>(`lifecycle/jobs/${id}/logs`, {
        tail: 500
      }).catch(() => ({ records: [] as { id: number; message: string }[] }))
    ]);
    this.series.clear();
    this.counters.clear();
    this.series.addBuckets(metrics.series);
    for (const s of metrics.series) {
      this.counters.set(s.name, s.count);
    }
    this.drawCharts();
    this.logBox.textContent = '';
    this.appendLog(logs.records.map(r => r.message));
    void this.loadArtifacts();
    void this.loadOutput();
    this.followOutput();
  }

  private onEvent(event: StreamEvent): void {
    const data = event.data ?? {};
    switch (event.type) {
      case 'state':
      case 'updated':
        if (data.job) {
          this.setJob(data.job);
          this.nb.jobs.upsert(data.job);
        }
        if (TERMINAL_STATES.includes(data.state)) {
          void this.loadArtifacts();
          void this.loadOutput();
          this.followOutput();
        }
        break;
      case 'progress':
        if (this.job) {
          this.setJob({ ...this.job, progress: { ...this.job.progress, ...data.progress } });
        }
        break;
      case 'metrics':
        this.series.addStreamPoints(data.points ?? [], this.counters);
        if (this.job && data.latest) {
          this.setJob({
            ...this.job,
            latest_metrics: { ...this.job.latest_metrics, ...data.latest },
            headline: data.headline ?? this.job.headline
          });
        }
        this.scheduleCharts();
        break;
      case 'log':
        this.appendLog(data.lines ?? []);
        break;
      case 'model':
        if (this.job) {
          this.setJob({ ...this.job, model: data.model });
        }
        break;
      case 'checkpoint':
        void this.loadArtifacts();
        break;
    }
  }

  private setJob(job: Job): void {
    if (job.duration !== this.job?.duration || job.state !== this.job?.state) {
      this.readAt = Date.now(); // a record read from the server (a progress merge keeps both)
    }
    this.job = job;
    const trans = this.nb.trans;
    this.title.label = job.name || job.id;
    this.title.caption = `${job.name} (${job.id})`;
    const fraction = progressFraction(job);
    const control = (action: string, label: string) =>
      button(label, () => void this.control(action), {
        class: `nb-action-${action}`,
        kind: controlKind(action)
      });
    const actions: HTMLElement[] = [];
    if (job.state === 'running') {
      actions.push(control('pause', trans.__('Pause')), control('stop', trans.__('Stop')));
    } else if (job.state === 'paused') {
      actions.push(control('resume', trans.__('Resume')), control('stop', trans.__('Stop')));
    } else if (job.state === 'queued') {
      actions.push(control('cancel', trans.__('Cancel')));
    }
    if (['failed', 'stopped'].includes(job.state)) {
      actions.push(control('restart', trans.__('Restart from checkpoint')));
    }
    if (job.kind !== 'interactive') {
      actions.push(button(trans.__('Clone with edits'), () => void this.nb.cloneJob(job), { kind: 'minimal' }));
    }
    if (job.sweep_id) {
      actions.push(button(trans.__('Compare sweep'), () => void this.compareSweep(job.sweep_id!), { kind: 'minimal' }));
    }
    const metrics = Object.entries(job.latest_metrics ?? {})
      .filter(([name]) => name !== 'epoch' || job.progress?.epoch === undefined)
      .map(([name, value]) =>
      h('span', { class: 'nb-fact' }, h('b', {}, name), ' ', formatMetric(value))
    );
    fill(
      this.header,
      h('h2', {}, job.name || job.id, ' ',
        h('span', { class: `nb-badge nb-job-state nb-state-${job.state}`, dataset: { state: job.state } },
          trans.__(job.state))),
      h('div', { class: 'nb-progress' },
        h('div', { class: 'nb-progress-bar', style: `width: ${Math.round((fraction ?? 0) * 100)}%` })),
      h('div', { class: 'nb-facts' },
        h('span', { class: 'nb-fact' }, h('b', {}, trans.__('duration')), ' ',
          (this.durationEl = h('span', { class: 'nb-job-duration' },
            formatDuration(liveDuration(job, this.readAt, Date.now()))))),
        runsOnFact(trans, job),
        job.progress?.epoch !== undefined
          ? h('span', { class: 'nb-fact' }, h('b', {}, trans.__('epoch')), ' ', formatMetric(job.progress.epoch))
          : null,
        job.progress?.eta_seconds
          ? h('span', { class: 'nb-fact' }, h('b', {}, trans.__('left')), ' ', formatDuration(job.progress.eta_seconds))
          : null,
        metrics,
        job.reason ? h('span', { class: 'nb-fact' }, h('b', {}, trans.__('reason')), ' ', job.reason) : null
      ),
      job.error
        ? h('pre', { class: 'nb-job-error' }, `${job.error.ename ?? ''}: ${job.error.evalue ?? ''}`)
        : null,
      h('div', { class: 'nb-job-actions' }, actions)
    );
    this.renderModel(job);
  }

  private renderModel(job: Job): void {
    const trans = this.nb.trans;
    const snippet =
      job.load_snippet ?? (job.model ? `import notebench\nmodel = notebench.load_model("${job.id}")` : null);
    if (!job.model && !snippet) {
      fill(this.modelBox, h('p', { class: 'nb-empty' }, trans.__('No model yet.')));
      return;
    }
    const model = job.model ?? {};
    fill(
      this.modelBox,
      model.path || model.name
        ? h('p', {}, String(model.name ?? model.path ?? ''), ' ', model.size ? formatBytes(model.size) : '')
        : null,
      snippet ? h('pre', { class: 'nb-snippet' }, snippet) : null,
      snippet
        ? button(trans.__('Copy'), () => void navigator.clipboard?.writeText(snippet), { kind: 'minimal' })
        : null
    );
  }

  private scheduleCharts(): void {
    if (this.chartTimer !== null) {
      return;
    }
    this.chartTimer = setTimeout(() => {
      this.chartTimer = null;
      this.drawCharts();
    }, 250);
  }

  private drawCharts(): void {
    const groups = groupMetrics(this.series.names);
    if (!groups.length) {
      fill(this.chartsBox, h('p', { class: 'nb-empty' }, this.nb.trans.__('No metrics reported yet.')));
      this.charts.forEach(c => c.dispose());
      this.charts.clear();
      return;
    }
    const keys = new Set(groups.map(g => g.join(',')));
    for (const [key, chart] of this.charts) {
      if (!keys.has(key)) {
        chart.dispose();
        this.charts.delete(key);
      }
    }
    const nodes: HTMLElement[] = [];
    for (const group of groups) {
      const key = group.join(',');
      let chart = this.charts.get(key);
      if (!chart) {
        chart = new LineChart({ height: 170 });
        this.charts.set(key, chart);
      }
      chart.setData(this.series.columns(group));
      nodes.push(chart.node);
    }
    if (nodes.some((n, i) => this.chartsBox.children[i] !== n) || this.chartsBox.children.length !== nodes.length) {
      fill(this.chartsBox, nodes);
    }
  }

  private appendLog(lines: string[]): void {
    if (!lines.length) {
      return;
    }
    const box = this.logBox;
    const follow = box.scrollTop + box.clientHeight >= box.scrollHeight - 20;
    box.append(lines.join('\n') + '\n');
    // keep the tail: drop the oldest text nodes past the limit
    while (box.childNodes.length > MAX_LOG_LINES / 10) {
      box.removeChild(box.firstChild!);
    }
    if (follow) {
      box.scrollTop = box.scrollHeight;
    }
  }

  private async loadArtifacts(): Promise<void> {
    const trans = this.nb.trans;
    let answer: { files: { path: string; size: number; kind: string }[] };
    try {
      answer = await this.nb.api.get(`lifecycle/artifacts/${this.jobId}`);
    } catch {
      return;
    }
    if (!answer.files.length) {
      fill(this.artifactsBox, h('p', { class: 'nb-empty' }, trans.__('No files yet.')));
      return;
    }
    fill(
      this.artifactsBox,
      h('table', { class: 'nb-table' },
        h('tbody', {}, answer.files.map(file =>
          h('tr', {},
            h('td', {}, h('a', {
              href: this.nb.api.url(
                `lifecycle/artifacts/${this.jobId}/${file.path.split('/').map(encodeURIComponent).join('/')}`
              ),
              download: file.path.split('/').pop(),
              class: 'nb-download'
            }, file.path)),
            h('td', {}, file.kind),
            h('td', { class: 'nb-num' }, formatBytes(file.size))
          )
        ))
      )
    );
  }

  private async loadOutput(): Promise<void> {
    let notebook: { cells: any[] };
    try {
      notebook = await this.nb.api.get(`lifecycle/jobs/${this.jobId}/output`);
    } catch {
      fill(this.outputBox, h('p', { class: 'nb-empty' }, this.nb.trans.__('Not executed yet.')));
      return;
    }
    fill(this.outputBox, notebook.cells.map(cell => renderCell(cell)));
  }

  /** The output notebook is saved after each cell and on autosave: re-read while running. */
  private followOutput(): void {
    const active = this.job && !TERMINAL_STATES.includes(this.job.state);
    if (active && this.outputTimer === null) {
      this.outputTimer = setInterval(() => {
        if (this.isVisible) {
          void this.loadOutput();
        }
      }, 10_000);
    } else if (!active && this.outputTimer !== null) {
      clearInterval(this.outputTimer);
      this.outputTimer = null;
    }
  }

  private async control(action: string): Promise<void> {
    const answer = await attempt(this.nb, this.nb.trans.__('Could not %1 the job', action), () =>
      this.nb.api.post<Job>(`lifecycle/jobs/${this.jobId}/control`, { action })
    );
    if (!answer) {
      return;
    }
    if (action === 'restart') {
      this.nb.openJob(answer.id);
    } else {
      this.setJob(answer);
      this.nb.jobs.upsert(answer);
    }
  }

  private async compareSweep(sweepId: string): Promise<void> {
    const answer = await attempt(this.nb, this.nb.trans.__('Could not read the sweep'), () =>
      this.nb.api.get<{ jobs: Job[] }>('lifecycle/jobs', { sweep_id: sweepId, limit: 100 })
    );
    if (answer) {
      this.nb.openCompare(answer.jobs.map(j => j.id));
    }
  }
}

const text = (value: unknown): string => (Array.isArray(value) ? value.join('') : String(value ?? ''));

/** A notebook cell as read-only elements: source, then text, images and errors. */
export function renderCell(cell: any): HTMLElement {
  const outputs: HTMLElement[] = [];
  for (const output of cell.outputs ?? []) {
    if (output.output_type === 'stream') {
      outputs.push(h('pre', { class: `nb-out nb-out-${output.name}` }, text(output.text)));
    } else if (output.output_type === 'error') {
      outputs.push(h('pre', { class: 'nb-out nb-out-error' }, `${output.ename}: ${output.evalue}`));
    } else if (output.data) {
      const data = output.data;
      if (data['image/png']) {
        outputs.push(h('img', { class: 'nb-out-image', src: `data:image/png;base64,${text(data['image/png'])}`, alt: '' }));
      } else if (data['text/plain']) {
        outputs.push(h('pre', { class: 'nb-out' }, text(data['text/plain'])));
      }
    }
  }
  const count = cell.execution_count ?? ' ';
  return h('div', { class: `nb-cell nb-cell-${cell.cell_type}` },
    h('div', { class: 'nb-cell-source' },
      cell.cell_type === 'code' ? h('span', { class: 'nb-prompt' }, `[${count}]`) : null,
      h('pre', {}, text(cell.source))),
    outputs
  );
}
