/**
 * The "Training" sidebar: the live job list (state, progress, epoch, loss/accuracy,
 * duration), pause/resume/stop/clone, selection for "Compare", a click opens the job view.
 */
import { Widget } from '@lumino/widgets';
import { attempt, Notebench } from '../context';
import { formatDuration, formatMetric } from '../model/format';
import { headlineMetric, liveDuration, progressFraction } from '../model/jobs';
import { Job } from '../model/types';
import { runsOnFact } from './cluster';
import { connectionBadge } from './connection';
import { button, controlKind, fill, h } from './dom';

export class TrainingPanel extends Widget {
  private list = h('div', { class: 'nb-job-list' });
  private empty: HTMLElement;
  private selected = new Set<string>();
  private compareButton: HTMLButtonElement;
  private readAt = new Map<string, number>();
  private timer: ReturnType<typeof setInterval>;
  private disposers: (() => void)[] = [];

  constructor(private nb: Notebench) {
    super();
    const trans = nb.trans;
    this.id = 'notebench-training';
    this.addClass('nb-panel');
    this.node.dir = nb.dir;
    this.addClass('nb-training');
    this.title.caption = trans.__('Training jobs');
    const badge = connectionBadge(nb);
    this.disposers.push(badge.dispose);
    this.compareButton = button(trans.__('Compare'), () => nb.openCompare([...this.selected]), {
      class: 'nb-compare-selected',
      kind: 'accept',
      title: trans.__('Compare the selected runs')
    });
    this.empty = h('p', { class: 'nb-empty' }, trans.__('No training jobs yet. Open a notebook and use "Run as training job".'));
    this.node.append(
      h('header', { class: 'nb-panel-header' },
        h('h2', {}, trans.__('Training')),
        badge.node,
        this.compareButton,
        button(trans.__('System'), () => nb.openSystem(), {
          kind: 'minimal',
          title: trans.__('Open the System panel')
        })
      ),
      this.empty,
      this.list
    );
    this.disposers.push(nb.jobs.onChange(jobs => this.render(jobs)));
    this.render(nb.jobs.list());
    // durations of running jobs tick every second without a request
    this.timer = setInterval(() => this.tickDurations(), 1000);
  }

  dispose(): void {
    clearInterval(this.timer);
    this.disposers.forEach(d => d());
    super.dispose();
  }

  private render(jobs: Job[]): void {
    const now = Date.now();
    for (const job of jobs) {
      this.readAt.set(`${job.id}:${job.updated}`, now);
    }
    this.empty.hidden = jobs.length > 0;
    for (const id of [...this.selected]) {
      if (!jobs.some(j => j.id === id)) {
        this.selected.delete(id);
      }
    }
    this.compareButton.disabled = this.selected.size < 2;
    fill(this.list, jobs.slice(0, 200).map(job => this.row(job)));
  }

  private row(job: Job): HTMLElement {
    const trans = this.nb.trans;
    const fraction = progressFraction(job);
    const loss = headlineMetric(job, 'loss');
    const acc = headlineMetric(job, 'accuracy');
    const epoch = job.progress?.epoch ?? job.latest_metrics?.epoch;
    const actions: HTMLElement[] = [];
    const control = (action: string, label: string) =>
      button(label, () => void this.control(job, action), {
        class: `nb-action-${action}`,
        kind: controlKind(action),
        title: label
      });
    if (job.state === 'running') {
      actions.push(control('pause', trans.__('Pause')), control('stop', trans.__('Stop')));
    } else if (job.state === 'paused') {
      actions.push(control('resume', trans.__('Resume')), control('stop', trans.__('Stop')));
    } else if (job.state === 'queued') {
      actions.push(control('cancel', trans.__('Cancel')));
    }
    if (job.kind !== 'interactive') {
      actions.push(
        button(trans.__('Clone'), () => void this.nb.cloneJob(job), {
          class: 'nb-action-clone',
          kind: 'minimal',
          title: trans.__('Clone with edits')
        })
      );
    }
    const checkbox = h('input', {
      type: 'checkbox',
      class: 'nb-job-select',
      checked: this.selected.has(job.id),
      title: trans.__('Select for comparison'),
      onclick: (e: Event) => e.stopPropagation(),
      onchange: (e: Event) => {
        const on = (e.target as HTMLInputElement).checked;
        on ? this.selected.add(job.id) : this.selected.delete(job.id);
        this.compareButton.disabled = this.selected.size < 2;
      }
    });
    return h(
      'div',
      {
        class: `nb-job nb-state-${job.state}`,
        dataset: { jobId: job.id, state: job.state },
        role: 'button',
        tabindex: 0,
        title: trans.__('Open the job view'),
        onclick: () => this.nb.openJob(job.id),
        onkeydown: (e: KeyboardEvent) => e.key === 'Enter' && this.nb.openJob(job.id)
      },
      h('div', { class: 'nb-job-line' },
        checkbox,
        h('span', { class: 'nb-job-name' }, job.name || job.id),
        h('span', { class: `nb-badge nb-job-state nb-state-${job.state}` }, trans.__(job.state))
      ),
      h('div', { class: 'nb-progress', title: fraction === null ? '' : `${Math.round(fraction * 100)}%` },
        h('div', { class: 'nb-progress-bar', style: `width: ${Math.round((fraction ?? 0) * 100)}%` })
      ),
      h('div', { class: 'nb-job-facts' },
        epoch !== undefined && epoch !== null
          ? h('span', { class: 'nb-job-epoch' }, trans.__('epoch %1', formatMetric(epoch)))
          : null,
        loss ? h('span', { class: 'nb-job-loss' }, `${loss.name} ${formatMetric(loss.value)}`) : null,
        acc ? h('span', { class: 'nb-job-acc' }, `${acc.name} ${formatMetric(acc.value)}`) : null,
        h('span', { class: 'nb-job-duration', dataset: { jobId: job.id } },
          formatDuration(job.duration)),
        runsOnFact(trans, job)
      ),
      job.state === 'failed' && job.error
        ? h('div', { class: 'nb-job-error' }, `${job.error.ename ?? ''}: ${job.error.evalue ?? ''}`)
        : null,
      h('div', { class: 'nb-job-actions' }, actions)
    );
  }

  private tickDurations(): void {
    if (!this.isVisible) {
      return;
    }
    const now = Date.now();
    for (const el of this.list.querySelectorAll<HTMLElement>('.nb-job-duration')) {
      const job = this.nb.jobs.get(el.dataset.jobId ?? '');
      if (job && job.state === 'running') {
        const readAt = this.readAt.get(`${job.id}:${job.updated}`) ?? now;
        el.textContent = formatDuration(liveDuration(job, readAt, now));
      }
    }
  }

  private async control(job: Job, action: string): Promise<void> {
    const trans = this.nb.trans;
    const answer = await attempt(this.nb, trans.__('Could not %1 the job', action), () =>
      this.nb.api.post<Job>(`lifecycle/jobs/${job.id}/control`, { action })
    );
    if (answer) {
      this.nb.jobs.upsert(answer);
    }
  }
}
