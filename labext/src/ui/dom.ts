/** A small DOM builder: the panels render plain elements (no framework in the bundle). */

type Child = Node | string | number | null | undefined | false;
type Attrs = Record<string, any>;

export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Attrs = {},
  ...children: (Child | Child[])[]
): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) {
      continue;
    }
    if (key === 'class') {
      el.className = String(value);
    } else if (key.startsWith('on') && typeof value === 'function') {
      el.addEventListener(key.slice(2).toLowerCase(), value);
    } else if (key === 'dataset') {
      Object.assign(el.dataset, value);
    } else if (key in el && typeof value !== 'string') {
      (el as any)[key] = value;
    } else {
      el.setAttribute(key, value === true ? '' : String(value));
    }
  }
  append(el, children);
  return el;
}

function append(el: HTMLElement, children: (Child | Child[])[]): void {
  for (const child of children) {
    if (Array.isArray(child)) {
      append(el, child);
    } else if (child !== null && child !== undefined && child !== false) {
      el.append(child instanceof Node ? child : String(child));
    }
  }
}

/** Replace an element's children. */
export function fill(el: HTMLElement, ...children: (Child | Child[])[]): void {
  el.replaceChildren();
  append(el, children);
}

/**
 * Lab's kinds of button (its dialogs' and toolbars' classes): `accept` for the action a
 * place is for, `warn` for one that ends or removes something, `reject` for a neutral one,
 * `minimal` for a secondary one drawn as text until hovered.
 */
export type ButtonKind = 'accept' | 'reject' | 'warn' | 'minimal';

/** The classes of a Lab button of `kind`, with `extra` classes of our own after them. */
export function buttonClass(kind: ButtonKind, extra = ''): string {
  return `jp-Button jp-mod-styled jp-mod-small jp-mod-${kind} nb-button ${extra}`.trim();
}

/** A button with JupyterLab's own look (`buttonClass`); `attrs.class` adds to its classes. */
export function button(
  label: string,
  onClick: () => void,
  attrs: Attrs & { kind?: ButtonKind } = {}
): HTMLButtonElement {
  const { kind = 'reject', class: extra, ...rest } = attrs;
  return h(
    'button',
    { type: 'button', ...rest, class: buttonClass(kind, extra ?? ''),
      onclick: (e: Event) => { e.stopPropagation(); onClick(); } },
    label
  );
}

/** The kind of a job control's button: going on is the action, ending it a warning. */
export function controlKind(action: string): ButtonKind {
  return action === 'resume' || action === 'restart' ? 'accept'
    : action === 'stop' || action === 'cancel' ? 'warn' : 'reject';
}
