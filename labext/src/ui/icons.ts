import { LabIcon } from '@jupyterlab/ui-components';

const svg = (body: string) =>
  `<svg xmlns="http://www.w3.org/2000/svg" width="16" height="16" viewBox="0 0 24 24">${body}</svg>`;

export const trainingIcon = new LabIcon({
  name: 'notebench:training',
  svgstr: svg(
    '<path class="jp-icon3" fill="#616161" d="M3 3h2v16h16v2H3zm4 12 4-5 3 3 5-7 1.6 1.2-6.4 9-3-3-2.6 3.3z"/>'
  )
});

export const assetsIcon = new LabIcon({
  name: 'notebench:assets',
  svgstr: svg(
    '<path class="jp-icon3" fill="#616161" d="M4 4h6l2 2h8v14H4zm2 4v10h12V8z"/>'
  )
});

export const runJobIcon = new LabIcon({
  name: 'notebench:run-job',
  svgstr: svg(
    '<path class="jp-icon3" fill="#616161" d="M4 5h10v2H4zm0 4h10v2H4zm0 4h6v2H4zm11-1 6 4-6 4z"/>'
  )
});

export const dashboardIcon = new LabIcon({
  name: 'notebench:dashboard',
  svgstr: svg(
    '<path class="jp-icon3" fill="#616161" d="M3 3h8v10H3zm10 0h8v6h-8zM3 15h8v6H3zm10-4h8v10h-8z"/>'
  )
});
