/**
 * "Run as training job": save the notebook (or the percent-format `.py` script, which the
 * server reads as a notebook), read its papermill parameters, offer to tag a parameters cell
 * when an open notebook has none, ask for values (prefilled with the hardware
 * recommendations), submit, and link the new job. "Clone with edits" uses the same form.
 */
import { Dialog, Notification, showDialog } from '@jupyterlab/apputils';
import { NotebookPanel } from '@jupyterlab/notebook';
import { Widget } from '@lumino/widgets';
import { attempt, Notebench } from '../context';
import {
  changedValues, initialText, jobBaseName, ParameterError, recommendationValues, toText
} from '../model/params';
import { Job, NotebookParameters, Parameter } from '../model/types';
import { h } from './dom';

/** The form of a dialog: a field per parameter, plus the job's name. */
class ParametersForm extends Widget {
  readonly inputs = new Map<string, HTMLInputElement>();
  readonly nameInput: HTMLInputElement;
  readonly errorBox = h('p', { class: 'nb-form-error' });

  constructor(nb: Notebench, params: Parameter[], initial: Record<string, string>,
              hints: Record<string, string>, name: string) {
    super();
    this.addClass('nb-params-form');
    this.node.dir = nb.dir;
    const trans = nb.trans;
    this.nameInput = h('input', { class: 'jp-mod-styled nb-job-name-input', value: name, 'aria-label': trans.__('Job name') });
    const rows = params.map(param => {
      const input = h('input', {
        class: 'jp-mod-styled',
        value: initial[param.name] ?? '',
        dataset: { param: param.name },
        'aria-label': param.name
      });
      this.inputs.set(param.name, input);
      return h('label', { class: 'nb-param' },
        h('span', { class: 'nb-param-name' }, param.name,
          h('small', {}, ` ${param.type}${param.asset ? ` · ${trans.__('asset: %1', param.asset)}` : ''}`)),
        input,
        param.help || hints[param.name]
          ? h('small', { class: 'nb-param-help' }, [param.help, hints[param.name]].filter(Boolean).join(' — '))
          : null
      );
    });
    this.node.append(
      h('label', { class: 'nb-param' }, h('span', { class: 'nb-param-name' }, trans.__('Job name')), this.nameInput),
      ...(rows.length ? rows : [h('p', {}, trans.__('This notebook has no parameters.'))]),
      this.errorBox
    );
  }

  texts(): Record<string, string> {
    const out: Record<string, string> = {};
    this.inputs.forEach((input, name) => (out[name] = input.value));
    return out;
  }
}

/** Ask for parameter values; the values that differ from the defaults, or null (cancelled). */
async function askParameters(nb: Notebench, title: string, params: Parameter[],
                             initial: Record<string, string>, hints: Record<string, string>,
                             name: string, okLabel: string
): Promise<{ parameters: Record<string, unknown>; name: string } | null> {
  const trans = nb.trans;
  const form = new ParametersForm(nb, params, initial, hints, name);
  for (;;) {
    const result = await showDialog({
      title,
      body: form,
      buttons: [Dialog.cancelButton({ label: trans.__('Cancel') }), Dialog.okButton({ label: okLabel })],
      focusNodeSelector: 'input[data-param]'
    });
    if (!result.button.accept) {
      form.dispose();
      return null;
    }
    try {
      const parameters = changedValues(params, form.texts());
      const answer = { parameters, name: form.nameInput.value.trim() };
      form.dispose();
      return answer;
    } catch (error) {
      if (!(error instanceof ParameterError)) {
        throw error;
      }
      form.errorBox.textContent = error.message; // ask again, keeping what was typed
    }
  }
}

async function recommendations(nb: Notebench): Promise<{ values: Record<string, unknown>; hints: Record<string, string> }> {
  try {
    const answer = await nb.api.get('hardware/recommendations');
    const hints: Record<string, string> = {};
    for (const [key, entry] of Object.entries<any>(answer?.settings ?? {})) {
      if (entry?.reason) {
        hints[key] = nb.trans.__('recommended: %1 (%2)', toText(entry.value), entry.reason);
      }
    }
    return { values: recommendationValues(answer), hints };
  } catch {
    return { values: {}, hints: {} };
  }
}

function notifyStarted(nb: Notebench, job: Job): void {
  Notification.success(nb.trans.__('Job "%1" submitted (%2).', job.name || job.id, job.state), {
    autoClose: 6000,
    actions: [{ label: nb.trans.__('Open job'), callback: () => nb.openJob(job.id) }]
  });
}

/** What a document's context offers the command: its path, and saving it. */
export interface SavableDocument {
  readonly path: string;
  readonly ready: Promise<void>;
  readonly model: { readonly dirty: boolean };
  readonly contentsModel: { readonly last_modified?: string } | null;
  save(): Promise<void>;
}

/** What "Run as training job" runs: a notebook or a script, open or not. */
export interface JobSource {
  /** the path under the server root */
  path: string;
  /** the open document, saved first when it has unsaved edits */
  document?: SavableDocument;
  /** an open notebook: offered to tag its active cell when it has no parameters cell */
  panel?: NotebookPanel;
}

/** The command's action for a notebook panel, an open script or a file of the browser. */
export async function runAsTrainingJob(nb: Notebench, source: JobSource): Promise<Job | undefined> {
  const trans = nb.trans;
  const { document, panel } = source;
  if (document) {
    await document.ready;
    if (document.model.dirty || !document.contentsModel?.last_modified) {
      await document.save();
    }
  }
  const path = document?.path ?? source.path;
  let info = await attempt(nb, trans.__('Could not read the notebook parameters'), () =>
    nb.api.get<NotebookParameters>('lifecycle/parameters', { path })
  );
  if (!info) {
    return;
  }
  if (info.parameters_cell === null && panel) {
    const tagged = await offerParametersCell(nb, panel);
    if (tagged) {
      info = await attempt(nb, trans.__('Could not read the notebook parameters'), () =>
        nb.api.get<NotebookParameters>('lifecycle/parameters', { path })
      );
      if (!info) {
        return;
      }
    }
  }
  const { values, hints } = await recommendations(nb);
  const initial: Record<string, string> = {};
  for (const param of info.parameters) {
    initial[param.name] = initialText(param, values[param.name]);
  }
  const base = jobBaseName(path);
  const answer = await askParameters(nb, trans.__('Run "%1" as a training job', base), info.parameters,
                                     initial, hints, base, trans.__('Run'));
  if (!answer) {
    return;
  }
  const job = await attempt(nb, trans.__('Could not submit the job'), () =>
    nb.api.post<Job>('lifecycle/jobs', { notebook: path, parameters: answer.parameters, name: answer.name || base })
  );
  if (job) {
    nb.jobs.upsert(job);
    notifyStarted(nb, job);
  }
  return job;
}

/** A notebook without a `parameters` cell: offer to tag the active cell (or add one). */
async function offerParametersCell(nb: Notebench, panel: NotebookPanel): Promise<boolean> {
  const trans = nb.trans;
  const result = await showDialog({
    title: trans.__('No parameters cell'),
    body: trans.__('papermill reads parameters from a cell tagged "parameters". Tag the active cell as the parameters cell? Without one, the job runs with the values as written.'),
    buttons: [Dialog.cancelButton({ label: trans.__('Run without') }), Dialog.okButton({ label: trans.__('Tag the active cell') })]
  });
  if (!result.button.accept) {
    return false;
  }
  const cell = panel.content.activeCell;
  if (!cell || cell.model.type !== 'code') {
    Notification.warning(trans.__('Select a code cell with the parameters first.'), { autoClose: 6000 });
    return false;
  }
  const tags = (cell.model.getMetadata('tags') as string[] | undefined) ?? [];
  if (!tags.includes('parameters')) {
    cell.model.setMetadata('tags', [...tags, 'parameters']);
  }
  await panel.context.save();
  return true;
}

/** Clone with edits: the job's notebook snapshot and parameters, overridden by the form. */
export async function cloneJob(nb: Notebench, job: Job): Promise<void> {
  const trans = nb.trans;
  let params: Parameter[] = [];
  try {
    if (job.notebook.path) {
      params = (await nb.api.get<NotebookParameters>('lifecycle/parameters', { path: job.notebook.path })).parameters;
    }
  } catch {
    params = [];
  }
  if (!params.length) {
    // the notebook moved: edit the job's own values as JSON-ish text
    params = Object.entries(job.parameters ?? {}).map(([name, value]) => ({
      name, type: typeof value, types: ['any'], default: value, required: false, help: '', asset: null
    }));
  }
  const initial: Record<string, string> = {};
  for (const param of params) {
    const given = (job.parameters ?? {})[param.name];
    initial[param.name] = given !== undefined ? toText(given) : initialText(param);
  }
  // the clone starts from the job's values: send every field that differs from them
  const asDefaults = params.map(p => ({ ...p, default: (job.parameters ?? {})[p.name] ?? p.default }));
  const answer = await askParameters(nb, trans.__('Clone "%1" with edits', job.name || job.id), asDefaults,
                                     initial, {}, `${job.name || job.id} (clone)`, trans.__('Run clone'));
  if (!answer) {
    return;
  }
  const created = await attempt(nb, trans.__('Could not clone the job'), () =>
    nb.api.post<Job>('lifecycle/jobs', { from_job: job.id, parameters: answer.parameters, name: answer.name })
  );
  if (created) {
    nb.jobs.upsert(created);
    notifyStarted(nb, created);
  }
}
