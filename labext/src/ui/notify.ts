/**
 * Lab notifications when a job ends or fails and when an alert fires, and, on return, a
 * "since you were away" list of what finished meanwhile: events replayed from the last
 * event id this browser saw (kept in localStorage) up to the server's position at load.
 */
import { Dialog, Notification, showDialog } from '@jupyterlab/apputils';
import { Widget } from '@lumino/widgets';
import { Notebench } from '../context';
import { StreamEvent } from '../stream/connection';
import { h } from './dom';

export const LAST_EVENT_KEY = 'notebench:last-event-id';

export function savedEventId(): number | null {
  try {
    const value = window.localStorage.getItem(LAST_EVENT_KEY);
    return value && /^\d+$/.test(value) ? parseInt(value, 10) : null;
  } catch {
    return null;
  }
}

/**
 * Keep the last event id this page accounted for: the last one it received, or the
 * server's position when it loaded (what happened before is in the state it read then).
 */
export function persistEventId(nb: Notebench, positionAtLoad: () => number | null): () => void {
  const save = () => {
    try {
      const id = Math.max(nb.hub.lastEventId ?? -1, positionAtLoad() ?? -1);
      if (id >= 0) {
        window.localStorage.setItem(LAST_EVENT_KEY, String(id));
      }
    } catch {
      // storage unavailable (private mode): no "since you were away" list
    }
  };
  const timer = setInterval(save, 5000);
  window.addEventListener('pagehide', save);
  return () => {
    clearInterval(timer);
    window.removeEventListener('pagehide', save);
  };
}

interface Finished {
  id: string;
  name: string;
  state: string;
  reason: string | null;
}

export class Notifier {
  private boundary: number | null = null;
  private held: StreamEvent[] = [];
  private away = new Map<string, Finished>();
  private awayTimer: ReturnType<typeof setTimeout> | null = null;
  private dispose: () => void;

  constructor(private nb: Notebench) {
    this.dispose = nb.hub.subscribe(['jobs', 'alerts'], { onEvent: event => this.onEvent(event) });
    // events up to the server's position at load happened while this browser was away
    nb.api
      .get<{ events: { last_id: number } }>('info')
      .then(info => (this.boundary = info.events.last_id))
      .catch(() => (this.boundary = 0))
      .finally(() => {
        const held = this.held;
        this.held = [];
        held.forEach(e => this.onEvent(e));
      });
  }

  /** The server's last event id when this page loaded (null until known). */
  get positionAtLoad(): number | null {
    return this.boundary || null;
  }

  close(): void {
    this.dispose();
    if (this.awayTimer !== null) {
      clearTimeout(this.awayTimer);
    }
  }

  private onEvent(event: StreamEvent): void {
    if (!this.nb.settings.notifications) {
      return;
    }
    if (this.boundary === null) {
      this.held.push(event);
      return;
    }
    const past = event.id !== null && event.id <= this.boundary;
    if (event.type === 'state' && event.topic === 'jobs') {
      this.jobState(event.data, past);
    } else if (event.type === 'alert' && !past) {
      this.alert(event.data);
    }
  }

  private jobState(data: any, past: boolean): void {
    const trans = this.nb.trans;
    const job = data.job ?? {};
    const name = job.name || data.job_id;
    if (!['succeeded', 'failed', 'stopped'].includes(data.state)) {
      return;
    }
    if (past) {
      this.away.set(data.job_id, { id: data.job_id, name, state: data.state, reason: data.reason });
      if (this.awayTimer === null) {
        this.awayTimer = setTimeout(() => this.showAway(), 1500);
      }
      return;
    }
    const open = [{ label: trans.__('Open job'), callback: () => this.nb.openJob(data.job_id) }];
    if (data.state === 'succeeded') {
      Notification.success(trans.__('Job "%1" succeeded.', name), { autoClose: 8000, actions: open });
    } else if (data.state === 'failed') {
      const why = job.error?.evalue ?? data.reason ?? '';
      Notification.error(trans.__('Job "%1" failed: %2', name, why), { autoClose: false, actions: open });
    } else {
      Notification.info(trans.__('Job "%1" stopped.', name), { autoClose: 6000, actions: open });
    }
  }

  private alert(alert: any): void {
    if (alert.state !== 'firing' || alert.previous === 'firing') {
      return;
    }
    const trans = this.nb.trans;
    const notify = alert.severity === 'critical' ? Notification.error : Notification.warning;
    notify(trans.__('Alert %1: %2', alert.rule, alert.message), {
      autoClose: alert.severity === 'critical' ? false : 10000,
      actions: [{ label: trans.__('System'), callback: () => this.nb.openSystem() }]
    });
  }

  private showAway(): void {
    this.awayTimer = null;
    const trans = this.nb.trans;
    const finished = [...this.away.values()];
    this.away.clear();
    if (!finished.length) {
      return;
    }
    Notification.info(trans._n('Since you were away: %1 job finished.', 'Since you were away: %1 jobs finished.', finished.length), {
      autoClose: false,
      actions: [{
        label: trans.__('Show'),
        callback: () => {
          void showDialog({
            title: trans.__('Since you were away'),
            body: new Widget({ node: h('ul', { class: 'nb-away-list' }, finished.map(f =>
              h('li', {}, h('a', { href: '#', onclick: (e: Event) => { e.preventDefault(); this.nb.openJob(f.id); } }, f.name),
                ' — ', trans.__(f.state), f.reason ? ` (${f.reason})` : '')))}),
            buttons: [Dialog.okButton({ label: trans.__('Close') })]
          });
        }
      }]
    });
  }
}
