/** The server's REST routes through Lab's ServerConnection (base URL, token, XSRF). */
import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';
import type { Cluster } from './model/cluster';

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string
  ) {
    super(message);
  }

  /** A failure that retrying will not fix (the request itself is refused). */
  get permanent(): boolean {
    return this.status >= 400 && this.status < 500 && this.status !== 408 && this.status !== 429;
  }
}

export class NotebenchApi {
  readonly settings: ServerConnection.ISettings;

  constructor(settings?: ServerConnection.ISettings) {
    this.settings = settings ?? ServerConnection.makeSettings();
  }

  /** The URL of a route under `notebench/api/`. */
  url(path: string, query?: Record<string, string | number | boolean | undefined>): string {
    let url = URLExt.join(this.settings.baseUrl, 'notebench/api', path);
    if (query) {
      const q = Object.entries(query)
        .filter(([, v]) => v !== undefined && v !== '')
        .map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(String(v))}`)
        .join('&');
      if (q) {
        url += (url.includes('?') ? '&' : '?') + q;
      }
    }
    return url;
  }

  /** A server URL outside the API (Voila, files). */
  serverUrl(path: string): string {
    return URLExt.join(this.settings.baseUrl, path);
  }

  async fetch(url: string, init: RequestInit = {}): Promise<Response> {
    let response: Response;
    try {
      response = await ServerConnection.makeRequest(url, init, this.settings);
    } catch (error) {
      throw new ApiError(0, 'network', String((error as Error)?.message ?? error));
    }
    if (!response.ok) {
      let code = 'http_error';
      let message = `${response.status} ${response.statusText}`;
      try {
        const body = await response.json();
        code = body?.error?.code ?? code;
        message = body?.error?.message ?? message;
      } catch {
        // not JSON
      }
      throw new ApiError(response.status, code, message);
    }
    return response;
  }

  async request<T = any>(method: string, path: string, body?: unknown,
                         query?: Record<string, string | number | boolean | undefined>
  ): Promise<T> {
    const init: RequestInit = { method };
    if (body !== undefined) {
      init.body = JSON.stringify(body);
      init.headers = { 'Content-Type': 'application/json' };
    }
    const response = await this.fetch(this.url(path, query), init);
    const text = await response.text();
    return (text ? JSON.parse(text) : null) as T;
  }

  get<T = any>(path: string, query?: Record<string, string | number | boolean | undefined>) {
    return this.request<T>('GET', path, undefined, query);
  }

  post<T = any>(path: string, body: unknown = {}) {
    return this.request<T>('POST', path, body);
  }

  patch<T = any>(path: string, body: unknown) {
    return this.request<T>('PATCH', path, body);
  }

  delete<T = any>(path: string) {
    return this.request<T>('DELETE', path);
  }

  /** Where jobs run: the executor, a cluster's workers and their jobs, the queued tasks. */
  cluster(): Promise<Cluster> {
    return this.get<Cluster>('lifecycle/cluster');
  }

  /** Open the multiplexed event stream (`query`: topics=...&last_event_id=...). */
  openStream(query: string, signal: AbortSignal): Promise<Response> {
    return ServerConnection.makeRequest(
      `${this.url('stream')}?${query}`,
      { signal, cache: 'no-store', headers: { Accept: 'text/event-stream' } },
      this.settings
    );
  }
}
