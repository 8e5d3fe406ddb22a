/**
 * The asset registry per category: list, download, delete, and upload of files of any size
 * by drag and drop (or a file picker) through the resumable protocol, with progress bars.
 */
import { Dialog, showDialog } from '@jupyterlab/apputils';
import { Widget } from '@lumino/widgets';
import { ApiError } from '../api';
import { attempt, Notebench } from '../context';
import { formatBytes } from '../model/format';
import { Asset } from '../model/types';
import { UploadTransport, uploadFile } from '../model/upload';
import { connectionBadge } from './connection';
import { button, buttonClass, fill, h } from './dom';

interface Root {
  category: string;
  files: number;
  bytes: number;
}

export class AssetsPanel extends Widget {
  private category = '';
  private select = h('select', { class: 'nb-category jp-mod-styled' });
  private list = h('div', { class: 'nb-asset-list' });
  private uploads = h('div', { class: 'nb-uploads' });
  private drop: HTMLElement;
  private refreshTimer: ReturnType<typeof setTimeout> | null = null;
  private disposers: (() => void)[] = [];

  constructor(private nb: Notebench) {
    super();
    const trans = nb.trans;
    this.id = 'notebench-assets';
    this.addClass('nb-panel');
    this.node.dir = nb.dir;
    this.addClass('nb-assets');
    this.title.caption = trans.__('Assets');
    const picker = h('input', {
      type: 'file',
      multiple: true,
      hidden: true,
      onchange: (e: Event) => {
        const input = e.target as HTMLInputElement;
        this.upload([...(input.files ?? [])]);
        input.value = '';
      }
    });
    this.select.addEventListener('change', () => {
      this.category = this.select.value;
      void this.refresh();
    });
    this.drop = h('div', { class: 'nb-dropzone' },
      trans.__('Drop files here to upload them to this category'), ' ',
      button(trans.__('Choose…'), () => picker.click(), { kind: 'accept' }),
      picker
    );
    for (const target of [this.node]) {
      target.addEventListener('dragover', e => {
        if (e.dataTransfer?.types.includes('Files')) {
          e.preventDefault();
          this.drop.classList.add('nb-mod-dragover');
        }
      });
      target.addEventListener('dragleave', () => this.drop.classList.remove('nb-mod-dragover'));
      target.addEventListener('drop', e => {
        this.drop.classList.remove('nb-mod-dragover');
        if (e.dataTransfer?.files.length) {
          e.preventDefault();
          e.stopPropagation();
          this.upload([...e.dataTransfer.files]);
        }
      });
    }
    const badge = connectionBadge(nb);
    this.disposers.push(badge.dispose);
    this.node.append(
      h('header', { class: 'nb-panel-header' }, h('h2', {}, trans.__('Assets')), badge.node, this.select),
      this.drop,
      this.uploads,
      this.list
    );
    this.disposers.push(
      nb.hub.subscribe(['assets'], {
        onEvent: () => this.scheduleRefresh(),
        refetch: () => void this.loadRoots()
      })
    );
  }

  dispose(): void {
    this.disposers.forEach(d => d());
    if (this.refreshTimer !== null) {
      clearTimeout(this.refreshTimer);
    }
    super.dispose();
  }

  private async loadRoots(): Promise<void> {
    const answer = await attempt(this.nb, this.nb.trans.__('Could not read the asset roots'), () =>
      this.nb.api.get<{ roots: Root[] }>('assets/roots')
    );
    if (!answer) {
      return;
    }
    if (!this.category) {
      this.category = answer.roots.find(r => r.category === 'datasets')?.category ?? answer.roots[0]?.category ?? '';
    }
    fill(this.select, answer.roots.map(r =>
      h('option', { value: r.category, selected: r.category === this.category },
        `${r.category} (${r.files}, ${formatBytes(r.bytes)})`)
    ));
    await this.refresh();
  }

  private scheduleRefresh(): void {
    if (this.refreshTimer === null) {
      this.refreshTimer = setTimeout(() => {
        this.refreshTimer = null;
        void this.loadRoots();
      }, 500);
    }
  }

  private async refresh(): Promise<void> {
    if (!this.category) {
      return;
    }
    const trans = this.nb.trans;
    const page = await attempt(this.nb, trans.__('Could not list the assets'), () =>
      this.nb.api.get<{ items: Asset[] }>(`assets/list/${encodeURIComponent(this.category)}`, {
        limit: 500,
        sort: '-modified'
      })
    );
    if (!page) {
      return;
    }
    fill(this.list, page.items.length
      ? page.items.map(asset => this.row(asset))
      : h('p', { class: 'nb-empty' }, trans.__('No assets in this category.')));
  }

  private row(asset: Asset): HTMLElement {
    const trans = this.nb.trans;
    const isFile = asset.kind !== 'dir';
    return h('div', { class: 'nb-asset', dataset: { assetId: asset.id } },
      h('span', { class: 'nb-asset-name', title: String(asset.rel_path ?? asset.path) }, String(asset.rel_path ?? asset.name)),
      h('span', { class: 'nb-num' }, formatBytes(asset.size)),
      isFile
        ? h('a', { class: buttonClass('minimal', 'nb-download'), href: this.nb.api.url(`assets/download/${asset.id}`), download: String(asset.name ?? '') }, trans.__('Download'))
        : null,
      button(trans.__('Delete'), () => void this.remove(asset), { class: 'nb-action-delete', kind: 'warn' })
    );
  }

  private async remove(asset: Asset): Promise<void> {
    const trans = this.nb.trans;
    const result = await showDialog({
      title: trans.__('Move to the trash?'),
      body: trans.__('%1 goes to the asset trash (it can be restored).', String(asset.rel_path ?? asset.name)),
      buttons: [Dialog.cancelButton({ label: trans.__('Cancel') }), Dialog.warnButton({ label: trans.__('Delete') })]
    });
    if (result.button.accept) {
      await attempt(this.nb, trans.__('Could not delete'), () => this.nb.api.delete(`assets/${asset.id}`));
      this.scheduleRefresh();
    }
  }

  private upload(files: File[]): void {
    for (const file of files) {
      void this.uploadOne(file);
    }
  }

  private async uploadOne(file: File): Promise<void> {
    const trans = this.nb.trans;
    const category = this.category;
    const bar = h('div', { class: 'nb-progress-bar', style: 'width: 0%' });
    const label = h('span', {}, `${file.name}: 0%`);
    const row = h('div', { class: 'nb-upload' }, label, h('div', { class: 'nb-progress' }, bar));
    this.uploads.append(row);
    try {
      await uploadFile(this.transport(), category, file, {
        onProgress: (sent, total) => {
          const pct = total ? Math.round((sent / total) * 100) : 100;
          bar.style.width = `${pct}%`;
          label.textContent = `${file.name}: ${pct}% (${formatBytes(sent)} / ${formatBytes(total)})`;
        }
      });
      label.textContent = trans.__('%1: uploaded', file.name);
      row.classList.add('nb-mod-done');
      setTimeout(() => row.remove(), 4000);
      this.scheduleRefresh();
    } catch (error) {
      label.textContent = trans.__('%1: failed (%2)', file.name, (error as Error).message);
      row.classList.add('nb-mod-failed');
      setTimeout(() => row.remove(), 15000);
    }
  }

  private transport(): UploadTransport {
    const api = this.nb.api;
    return {
      create: body => api.post('assets/uploads', body),
      send: async (id, offset, chunk) => {
        const response = await api.fetch(api.url(`assets/uploads/${id}`), {
          method: 'PATCH',
          body: chunk,
          headers: { 'Upload-Offset': String(offset), 'Content-Type': 'application/octet-stream' }
        });
        return response.json();
      },
      offset: async id => {
        const response = await api.fetch(api.url(`assets/uploads/${id}`), { method: 'HEAD' });
        return parseInt(response.headers.get('Upload-Offset') ?? '0', 10);
      },
      complete: id => api.post(`assets/uploads/${id}/complete`),
      abort: async id => {
        await api.delete(`assets/uploads/${id}`).catch((e: ApiError) => e);
      }
    };
  }
}
