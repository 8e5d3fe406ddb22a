/** Runs compared: overlaid curves on one step grid and the parameters that differ. */
import { Widget } from '@lumino/widgets';
import { attempt, Notebench } from '../context';
import { formatDuration, formatMetric } from '../model/format';
import { runLabels } from '../model/jobs';
import { groupMetrics, SeriesSet } from '../model/series';
import { Series } from '../model/types';
import { LineChart } from './chart';
import { fill, h } from './dom';

interface RunsMetrics {
  names: string[];
  runs: { job_id: string; name: string; state: string; series: Series[] }[];
}

interface Compare {
  jobs: { id: string; name: string; state: string; duration: number;
          metrics: Record<string, { final?: number; best?: number }> }[];
  parameters: { name: string; resolved: Record<string, unknown>; differs: boolean }[];
  differing: string[];
}

export class CompareView extends Widget {
  private charts: LineChart[] = [];
  private chartsBox = h('div', { class: 'nb-charts' });
  private table = h('div', { class: 'nb-compare-table' });

  constructor(private nb: Notebench, readonly ids: string[]) {
    super();
    this.id = `notebench-compare-${ids.join('-')}`;
    this.addClass('nb-panel');
    this.node.dir = nb.dir;
    this.addClass('nb-compare');
    this.title.label = nb.trans.__('Compare %1 runs', ids.length);
    this.title.closable = true;
    this.node.append(
      h('section', { class: 'nb-section' }, h('h3', {}, nb.trans.__('Curves')), this.chartsBox),
      h('section', { class: 'nb-section' }, h('h3', {}, nb.trans.__('Runs and parameters')), this.table)
    );
    void this.load();
  }

  dispose(): void {
    this.charts.forEach(c => c.dispose());
    super.dispose();
  }

  private async load(): Promise<void> {
    const ids = this.ids.join(',');
    const [metrics, compare] = await Promise.all([
      attempt(this.nb, this.nb.trans.__('Could not read the runs'), () =>
        this.nb.api.get<RunsMetrics>('lifecycle/jobs/metrics', { ids, max_points: this.nb.settings.chartPoints })
      ),
      attempt(this.nb, this.nb.trans.__('Could not compare the runs'), () =>
        this.nb.api.get<Compare>('lifecycle/jobs/compare', { ids })
      )
    ]);
    if (this.isDisposed) {
      return;
    }
    if (metrics) {
      this.drawCurves(metrics);
    }
    if (compare) {
      this.drawTable(compare);
    }
  }

  private drawCurves(metrics: RunsMetrics): void {
    this.charts.forEach(c => c.dispose());
    this.charts = [];
    const nodes: HTMLElement[] = [];
    const labels = runLabels(metrics.runs.map(run => ({ id: run.job_id, name: run.name })));
    for (const group of groupMetrics(metrics.names)) {
      const set = new SeriesSet();
      const names: string[] = [];
      for (const run of metrics.runs) {
        for (const series of run.series.filter(s => group.includes(s.name))) {
          const label = `${labels.get(run.job_id)}: ${series.name}`;
          set.addBuckets([{ ...series, name: label }]);
          names.push(label);
        }
      }
      const chart = new LineChart({ title: group.join(', '), height: 200 });
      chart.setData(set.columns(names));
      this.charts.push(chart);
      nodes.push(chart.node);
    }
    fill(this.chartsBox, nodes.length ? nodes : h('p', { class: 'nb-empty' }, this.nb.trans.__('No metrics.')));
  }

  private drawTable(compare: Compare): void {
    const trans = this.nb.trans;
    const metricNames = [...new Set(compare.jobs.flatMap(j => Object.keys(j.metrics)))].sort();
    const params = compare.parameters.filter(p => p.differs);
    const labels = runLabels(compare.jobs);
    fill(
      this.table,
      h('table', { class: 'nb-table' },
        h('thead', {}, h('tr', {},
          h('th', {}, trans.__('run')), h('th', {}, trans.__('state')), h('th', {}, trans.__('duration')),
          params.map(p => h('th', { class: 'nb-differs' }, p.name)),
          metricNames.map(m => h('th', {}, trans.__('%1 (best)', m)))
        )),
        h('tbody', {}, compare.jobs.map(job =>
          h('tr', { dataset: { jobId: job.id } },
            h('td', {}, h('a', { href: '#', onclick: (e: Event) => { e.preventDefault(); this.nb.openJob(job.id); } }, labels.get(job.id))),
            h('td', {}, trans.__(job.state)),
            h('td', { class: 'nb-num' }, formatDuration(job.duration)),
            params.map(p => h('td', { class: 'nb-differs' }, JSON.stringify(p.resolved[job.id] ?? null))),
            metricNames.map(m => h('td', { class: 'nb-num' }, formatMetric(job.metrics[m]?.best)))
          )
        ))
      ),
      params.length ? null : h('p', { class: 'nb-empty' }, trans.__('The runs have the same parameters.'))
    );
  }
}
