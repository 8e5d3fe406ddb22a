/** What every part of the extension shares: the API, the event hub, strings, settings. */
import { JupyterFrontEnd } from '@jupyterlab/application';
import { TranslationBundle } from '@jupyterlab/translation';
import { NotebenchApi } from './api';
import { JobsModel } from './model/jobs';
import { Job } from './model/types';
import { EventHub } from './stream/hub';

export interface Settings {
  showTrainingPanel: boolean;
  showAssetsPanel: boolean;
  showStatusBar: boolean;
  notifications: boolean;
  monitoringMaxHz: number;
  jobRefreshMs: number;
  chartPoints: number;
}

export const DEFAULT_SETTINGS: Settings = {
  showTrainingPanel: true,
  showAssetsPanel: true,
  showStatusBar: true,
  notifications: true,
  monitoringMaxHz: 2,
  jobRefreshMs: 1500,
  chartPoints: 1000
};

export interface Notebench {
  app: JupyterFrontEnd;
  api: NotebenchApi;
  hub: EventHub;
  trans: TranslationBundle;
  /** The writing direction of Lab's language; every panel lays itself out by it. */
  dir: 'ltr' | 'rtl';
  jobs: JobsModel;
  settings: Settings;
  openJob(id: string): void;
  openCompare(ids: string[]): void;
  openSystem(): void;
  cloneJob(job: Job): Promise<void>;
}

/** Run an action; show what went wrong in a Lab notification. */
export async function attempt<T>(
  _nb: Notebench,
  what: string,
  action: () => Promise<T>
): Promise<T | undefined> {
  try {
    return await action();
  } catch (error) {
    const { Notification } = await import('@jupyterlab/apputils');
    Notification.error(`${what}: ${(error as Error).message ?? error}`, { autoClose: 8000 });
    return undefined;
  }
}
