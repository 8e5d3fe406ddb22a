/**
 * notebench in JupyterLab: the Training and Assets sidebars, job and compare views, the
 * System panel and status bar item, notifications, "Run as training job" (a notebook, or a
 * percent-format `.py` script in an editor or the file browser) and launcher tiles, all fed
 * by one event stream per browser (see stream/hub.ts).
 */
import {
  ILabShell, ILayoutRestorer, JupyterFrontEnd, JupyterFrontEndPlugin
} from '@jupyterlab/application';
import { ICommandPalette, MainAreaWidget, WidgetTracker } from '@jupyterlab/apputils';
import { PageConfig, URLExt } from '@jupyterlab/coreutils';
import { IDocumentManager } from '@jupyterlab/docmanager';
import { IDefaultFileBrowser } from '@jupyterlab/filebrowser';
import { ILauncher } from '@jupyterlab/launcher';
import { INotebookTracker } from '@jupyterlab/notebook';
import { ISettingRegistry } from '@jupyterlab/settingregistry';
import { IStatusBar } from '@jupyterlab/statusbar';
import { ITranslator, nullTranslator } from '@jupyterlab/translation';
import { NotebenchApi } from './api';
import { DEFAULT_SETTINGS, Notebench, Settings } from './context';
import { textDirection } from './model/format';
import { isJobFile } from './model/params';
import { JobsModel } from './model/jobs';
import { Job } from './model/types';
import { StreamConnection } from './stream/connection';
import { ChannelLike, EventHub } from './stream/hub';
import { AssetsPanel } from './ui/assets';
import { CompareView } from './ui/compare';
import { assetsIcon, dashboardIcon, runJobIcon, trainingIcon } from './ui/icons';
import { JobView } from './ui/jobview';
import { Notifier, persistEventId, savedEventId } from './ui/notify';
import { cloneJob, JobSource, runAsTrainingJob } from './ui/runjob';
import { StatusItem, SystemModel, SystemPanel } from './ui/system';
import { TrainingPanel } from './ui/training';

const PLUGIN_ID = 'notebench:plugin';

export namespace CommandIDs {
  export const runAsJob = 'notebench:run-as-job';
  export const runFileAsJob = 'notebench:run-file-as-job';
  export const openJob = 'notebench:open-job';
  export const compare = 'notebench:compare';
  export const openSystem = 'notebench:open-system';
  export const openDashboard = 'notebench:open-dashboard';
  export const openTemplate = 'notebench:open-template';
}

function randomId(): string {
  return `${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 10)}`;
}

/** A path under the server root for an absolute one (the root may be shown as `~/...`). */
function rootRelative(absolute: string, fallback: string): string {
  const root = PageConfig.getOption('serverRoot').replace(/\/+$/, '');
  if (root && !root.startsWith('~') && absolute.startsWith(root + '/')) {
    return absolute.slice(root.length + 1);
  }
  if (root.startsWith('~')) {
    const rest = root.slice(1);
    const at = rest ? absolute.indexOf(rest + '/') : -1;
    if (at >= 0) {
      return absolute.slice(at + rest.length + 1);
    }
  }
  return fallback;
}

const plugin: JupyterFrontEndPlugin<void> = {
  id: PLUGIN_ID,
  description: 'notebench: live training jobs, assets and system monitoring in JupyterLab.',
  autoStart: true,
  optional: [
    ITranslator, ISettingRegistry, ILayoutRestorer, ILauncher, IStatusBar, INotebookTracker,
    ICommandPalette, ILabShell, IDocumentManager, IDefaultFileBrowser
  ],
  activate: async (
    app: JupyterFrontEnd,
    translator: ITranslator | null,
    settingRegistry: ISettingRegistry | null,
    restorer: ILayoutRestorer | null,
    launcher: ILauncher | null,
    statusBar: IStatusBar | null,
    notebooks: INotebookTracker | null,
    palette: ICommandPalette | null,
    labShell: ILabShell | null,
    docManager: IDocumentManager | null,
    fileBrowser: IDefaultFileBrowser | null
  ) => {
    const trans = (translator ?? nullTranslator).load('notebench');
    const api = new NotebenchApi(app.serviceManager.serverSettings);
    const settings: Settings = { ...DEFAULT_SETTINGS };
    let registered: ISettingRegistry.ISettings | null = null;
    if (settingRegistry) {
      try {
        registered = await settingRegistry.load(PLUGIN_ID);
        Object.assign(settings, registered.composite);
      } catch (error) {
        console.warn('notebench: settings not loaded, using defaults', error);
      }
    }

    const hub = new EventHub({
      tabId: randomId(),
      channel:
        typeof BroadcastChannel === 'undefined'
          ? null
          : (new BroadcastChannel(`notebench-stream:${api.settings.baseUrl}`) as unknown as ChannelLike),
      connect: (onEvent, onState) =>
        new StreamConnection({
          open: (query, signal) => api.openStream(query, signal),
          onEvent,
          onState,
          maxHz: settings.monitoringMaxHz
        }),
      initialEventId: savedEventId()
    });
    window.addEventListener('pagehide', () => hub.dispose());
    if (PageConfig.getOption('exposeAppInBrowser') === 'true') {
      (window as any).notebenchHub = hub; // for browser tests, like window.jupyterapp
    }

    const jobs = new JobsModel(
      id => api.get<Job>(`lifecycle/jobs/${id}`).catch(() => null),
      settings.jobRefreshMs
    );
    hub.subscribe(['jobs'], {
      onEvent: event => jobs.apply(event),
      refetch: () => {
        api
          .get<{ jobs: Job[] }>('lifecycle/jobs', { limit: 200 })
          .then(answer => jobs.reset(answer.jobs))
          .catch(error => console.warn('notebench: job list not read', error));
      }
    });

    const jobViews = new WidgetTracker<MainAreaWidget<JobView>>({ namespace: 'notebench-job' });
    let systemWidget: MainAreaWidget<SystemPanel> | null = null;

    const nb: Notebench = {
      app, api, hub, trans, jobs, settings,
      dir: textDirection(translator?.languageCode),
      openJob: id => void app.commands.execute(CommandIDs.openJob, { id }),
      openCompare: ids => void app.commands.execute(CommandIDs.compare, { ids }),
      openSystem: () => void app.commands.execute(CommandIDs.openSystem),
      cloneJob: job => cloneJob(nb, job)
    };
    const system = new SystemModel(nb);
    const notifier = new Notifier(nb);
    const stopPersisting = persistEventId(nb, () => notifier.positionAtLoad);
    window.addEventListener('pagehide', () => {
      notifier.close();
      stopPersisting();
    });

    // -- commands -------------------------------------------------------------------------
    app.commands.addCommand(CommandIDs.openJob, {
      label: trans.__('Open Training Job'),
      execute: args => {
        const id = String(args.id ?? '');
        const open = jobViews.find(w => w.content.jobId === id);
        if (open) {
          app.shell.activateById(open.id);
          return open;
        }
        const widget = new MainAreaWidget({ content: new JobView(nb, id) });
        widget.id = `notebench-job-${id}`;
        widget.title.icon = trainingIcon;
        widget.content.title.changed.connect(() => {
          widget.title.label = widget.content.title.label;
          widget.title.caption = widget.content.title.caption;
        });
        void jobViews.add(widget);
        app.shell.add(widget, 'main');
        app.shell.activateById(widget.id);
        return widget;
      }
    });
    app.commands.addCommand(CommandIDs.compare, {
      label: trans.__('Compare Training Runs'),
      execute: args => {
        const ids = (args.ids as string[]) ?? [];
        const widget = new MainAreaWidget({ content: new CompareView(nb, ids) });
        widget.title.icon = trainingIcon;
        widget.title.label = widget.content.title.label;
        app.shell.add(widget, 'main');
        app.shell.activateById(widget.id);
      }
    });
    app.commands.addCommand(CommandIDs.openSystem, {
      label: trans.__('System Monitor'),
      caption: trans.__('CPU, memory and GPU use and the alerts'),
      execute: () => {
        if (!systemWidget || systemWidget.isDisposed) {
          systemWidget = new MainAreaWidget({ content: new SystemPanel(nb, system) });
          systemWidget.id = 'notebench-system-panel';
          systemWidget.title.label = trans.__('System');
          systemWidget.title.icon = trainingIcon;
          app.shell.add(systemWidget, 'main');
        }
        app.shell.activateById(systemWidget.id);
      }
    });
    /**
     * What "Run as training job" runs: the current notebook, the notebook or script open in
     * the current editor (none for other documents), else the last notebook.
     */
    const currentJobSource = (): { source: JobSource | null; otherDocument: boolean } => {
      const current = app.shell.currentWidget;
      const panel = notebooks?.currentWidget ?? null;
      if (panel && current === panel) {
        return { source: { path: panel.context.path, document: panel.context, panel }, otherDocument: false };
      }
      const context = current && docManager ? docManager.contextForWidget(current) : undefined;
      if (context) {
        const runnable = isJobFile(context.path);
        return { source: runnable ? { path: context.path, document: context } : null, otherDocument: !runnable };
      }
      return {
        source: panel ? { path: panel.context.path, document: panel.context, panel } : null,
        otherDocument: false
      };
    };
    app.commands.addCommand(CommandIDs.runAsJob, {
      label: trans.__('Run as Training Job'),
      caption: trans.__('Save this notebook or script and run it as a training job (papermill) with edited parameters'),
      icon: runJobIcon,
      isEnabled: () => currentJobSource().source !== null,
      isVisible: () => !currentJobSource().otherDocument,
      execute: async () => {
        const { source } = currentJobSource();
        if (source) {
          return runAsTrainingJob(nb, source);
        }
      }
    });
    // the editor's toolbar button follows the current document
    labShell?.currentChanged.connect(() => app.commands.notifyCommandChanged(CommandIDs.runAsJob));

    /** The notebook or script selected in the file browser. */
    const selectedJobFile = (): string | null => {
      const next = fileBrowser?.selectedItems().next();
      const item = next && !next.done ? next.value : null;
      return item && item.type !== 'directory' && isJobFile(item.path) ? item.path : null;
    };
    app.commands.addCommand(CommandIDs.runFileAsJob, {
      label: trans.__('Run as Training Job'),
      caption: trans.__('Save this notebook or script and run it as a training job (papermill) with edited parameters'),
      icon: runJobIcon,
      isVisible: () => selectedJobFile() !== null,
      execute: async () => {
        const path = selectedJobFile();
        if (!path) {
          return;
        }
        const open = docManager?.findWidget(path);
        const document = open && docManager ? docManager.contextForWidget(open) : undefined;
        const panel = notebooks?.find(p => p.context.path === path);
        return runAsTrainingJob(nb, { path, document, panel });
      }
    });

    // -- workspace places (the launcher's tiles) --------------------------------------------
    let workspace = 'notebench';
    const workspaceReady = api
      .get<{ workspace: { path: string } }>('info')
      .then(info => (workspace = rootRelative(info.workspace.path, workspace)))
      .catch(() => workspace);
    app.commands.addCommand(CommandIDs.openDashboard, {
      label: trans.__('Training dashboard'),
      caption: trans.__('The notebench dashboard (Voila) in a new browser tab'),
      icon: dashboardIcon,
      execute: async () => {
        await workspaceReady;
        const path = `${workspace}/dashboards/dashboard.ipynb`;
        const url = api.serverUrl(`voila/render/${URLExt.encodeParts(path)}`);
        window.open(url, '_blank', 'noopener');
      }
    });
    app.commands.addCommand(CommandIDs.openTemplate, {
      label: args => String(args.label ?? trans.__('Training template')),
      caption: args => String(args.caption ?? ''),
      icon: trainingIcon,
      execute: async args => {
        await workspaceReady;
        return app.commands.execute('docmanager:open', { path: `${workspace}/notebooks/${args.path}` });
      }
    });

    if (palette) {
      const category = trans.__('notebench');
      [CommandIDs.runAsJob, CommandIDs.openSystem, CommandIDs.openDashboard].forEach(command =>
        palette.addItem({ command, category })
      );
    }
    if (launcher) {
      const category = trans.__('notebench');
      launcher.add({ command: CommandIDs.openDashboard, category, rank: 0 });
      api
        .get<{ templates: { name: string; path: string; description: string }[] }>('lifecycle/templates')
        .then(answer =>
          answer.templates.forEach((t, i) =>
            launcher.add({
              command: CommandIDs.openTemplate,
              category,
              rank: i + 1,
              args: { path: t.path, label: t.name, caption: t.description }
            })
          )
        )
        .catch(() => undefined);
    }

    // -- sidebars and status bar ------------------------------------------------------------
    let training: TrainingPanel | null = null;
    let assets: AssetsPanel | null = null;
    const applyPanels = () => {
      if (settings.showTrainingPanel && (!training || training.isDisposed)) {
        training = new TrainingPanel(nb);
        training.title.icon = trainingIcon;
        app.shell.add(training, 'left', { rank: 600 });
        restorer?.add(training, training.id);
      } else if (!settings.showTrainingPanel && training) {
        training.dispose();
        training = null;
      }
      if (settings.showAssetsPanel && (!assets || assets.isDisposed)) {
        assets = new AssetsPanel(nb);
        assets.title.icon = assetsIcon;
        app.shell.add(assets, 'left', { rank: 610 });
        restorer?.add(assets, assets.id);
      } else if (!settings.showAssetsPanel && assets) {
        assets.dispose();
        assets = null;
      }
    };
    applyPanels();
    if (statusBar) {
      statusBar.registerStatusItem('notebench:status', {
        item: new StatusItem(nb, system),
        align: 'left',
        rank: 100,
        isActive: () => settings.showStatusBar
      });
    }
    registered?.changed.connect(() => {
      Object.assign(settings, registered!.composite);
      jobs.refreshMs = settings.jobRefreshMs;
      applyPanels();
    });

    if (restorer) {
      void restorer.restore(jobViews, {
        command: CommandIDs.openJob,
        args: widget => ({ id: widget.content.jobId }),
        name: widget => widget.content.jobId
      });
    }
  }
};

export default plugin;
