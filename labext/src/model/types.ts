/** Shapes of the server's answers (the parts the extension reads). */

/** A headline metric: its name and latest value (a number or `{nonfinite: ...}`). */
export interface HeadlineMetric {
  name: string;
  value: number | { nonfinite: string };
}

export interface Headline {
  loss: HeadlineMetric | null;
  accuracy: HeadlineMetric | null;
}

export interface Job {
  id: string;
  kind: string;
  name: string;
  state: string;
  reason: string | null;
  template: string | null;
  notebook: { path: string | null; sha256?: string | null; kernel_name?: string | null };
  parameters: Record<string, unknown>;
  resolved_parameters?: Record<string, unknown>;
  created: number;
  started: number | null;
  ended: number | null;
  updated: number;
  duration: number;
  progress: Record<string, any>;
  latest_metrics: Record<string, any>;
  /** The metrics to show first, chosen by the server (a validation one, else the shortest name). */
  headline?: Headline;
  final_metrics?: Record<string, any> | null;
  error: { ename?: string; evalue?: string } | null;
  model: Record<string, any> | null;
  load_snippet?: string | null;
  sweep_id?: string | null;
  starred?: boolean;
  /** role (runner, kernel) -> its record; a remote runner's has executor, worker, host, gpu_uuids */
  processes?: Record<string, Record<string, unknown>>;
  [key: string]: unknown;
}

export interface Parameter {
  name: string;
  type: string;
  types: string[];
  default: unknown;
  default_source?: string | null;
  required: boolean;
  help: string;
  asset: string | null;
  choices?: unknown[] | null;
}

export interface NotebookParameters {
  path: string;
  kernel_name?: string | null;
  parameters_cell: number | null;
  parameters: Parameter[];
  problems?: string[];
}

export interface Bucket {
  x: number;
  x_last: number;
  count: number;
  min: number | null;
  max: number | null;
  mean: number | null;
  last: number | null;
}

export interface Series {
  name: string;
  count: number;
  buckets: Bucket[];
}

export interface Alert {
  id: string;
  rule: string;
  severity: string;
  state: string;
  message: string;
  labels: Record<string, string>;
  fired_at: number | null;
  updated?: number;
}

export interface Asset {
  id: string;
  name?: string;
  path: string;
  category: string;
  size: number | null;
  [key: string]: unknown;
}

export const TERMINAL_STATES = ['succeeded', 'failed', 'stopped', 'cancelled'];
export const ACTIVE_STATES = ['queued', 'running', 'paused', 'stopping'];
