/**
 * A small document for rendering tests in Node: elements with attributes, children,
 * `hidden`, `dataset`, text and simple selectors (`tag`, `.class`), enough for `ui/dom.ts`.
 */
import { vi } from 'vitest';

export class FakeNode {
  parent: FakeElement | null = null;
  get textContent(): string {
    return '';
  }
}

class FakeText extends FakeNode {
  constructor(readonly data: string) {
    super();
  }
  get textContent(): string {
    return this.data;
  }
}

export class FakeElement extends FakeNode {
  className = '';
  hidden = false;
  checked = false;
  disabled = false;
  dataset: Record<string, string> = {};
  childNodes: FakeNode[] = [];
  private attributes = new Map<string, string>();
  private listeners = new Map<string, ((event: unknown) => void)[]>();

  constructor(readonly tagName: string) {
    super();
  }

  get textContent(): string {
    return this.childNodes.map(c => c.textContent).join('');
  }

  get children(): FakeElement[] {
    return this.childNodes.filter((c): c is FakeElement => c instanceof FakeElement);
  }

  setAttribute(name: string, value: string): void {
    this.attributes.set(name, value);
  }

  getAttribute(name: string): string | null {
    return this.attributes.get(name) ?? null;
  }

  addEventListener(type: string, listener: (event: unknown) => void): void {
    this.listeners.set(type, [...(this.listeners.get(type) ?? []), listener]);
  }

  append(...nodes: (FakeNode | string)[]): void {
    for (const node of nodes) {
      const child = typeof node === 'string' ? new FakeText(node) : node;
      child.parent = this;
      this.childNodes.push(child);
    }
  }

  replaceChildren(...nodes: (FakeNode | string)[]): void {
    this.childNodes = [];
    this.append(...nodes);
  }

  /** Descendants matching `tag` or `.class`, in document order. */
  querySelectorAll(selector: string): FakeElement[] {
    const matches = (el: FakeElement) =>
      selector.startsWith('.')
        ? el.className.split(/\s+/).includes(selector.slice(1))
        : el.tagName === selector.toUpperCase();
    const found: FakeElement[] = [];
    const walk = (el: FakeElement) => {
      for (const child of el.children) {
        if (matches(child)) {
          found.push(child);
        }
        walk(child);
      }
    };
    walk(this);
    return found;
  }

  querySelector(selector: string): FakeElement | null {
    return this.querySelectorAll(selector)[0] ?? null;
  }
}

/** Make `document` and `Node` the fakes (undone by `vi.unstubAllGlobals`). */
export function installDom(): void {
  vi.stubGlobal('Node', FakeNode);
  vi.stubGlobal('document', { createElement: (tag: string) => new FakeElement(tag.toUpperCase()) });
}

/** Strings as `trans.__` gives them: `%1`… replaced, marked as gone through it. */
export const fakeTrans = {
  __: (text: string, ...args: unknown[]) =>
    `«${text.replace(/%(\d)/g, (_, n) => String(args[Number(n) - 1]))}»`
};
