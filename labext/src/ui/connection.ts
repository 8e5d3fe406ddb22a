/** The connection badge every live panel shows while the stream is not open. */
import { Notebench } from '../context';
import { ConnectionState } from '../stream/connection';

export function connectionBadge(nb: Notebench): { node: HTMLElement; dispose: () => void } {
  const node = document.createElement('span');
  node.className = 'nb-connection';
  const show = (state: ConnectionState) => {
    node.dataset.state = state;
    node.textContent =
      state === 'open'
        ? ''
        : state === 'connecting'
          ? nb.trans.__('connecting…')
          : nb.trans.__('reconnecting…');
    node.hidden = state === 'open';
  };
  show(nb.hub.connectionState);
  const dispose = nb.hub.onStateChange(show);
  return { node, dispose };
}
