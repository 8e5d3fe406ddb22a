import { JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';

const plugin: JupyterFrontEndPlugin<void> = {
  id: 'notebench:plugin',
  description: 'notebench in JupyterLab',
  autoStart: true,
  activate: (_app: JupyterFrontEnd) => {
    console.debug('notebench activated');
  }
};

export default plugin;
