/**
 * The "Run as training job" form: which files it runs, a parameter's initial text and the
 * value typed back.
 *
 * A value is sent only when it differs from the notebook's default, so the job records
 * what the person changed; "auto" stays a string the server (or the kernel) resolves.
 */
import { Parameter } from './types';

/** Files the server runs as jobs: notebooks and Python scripts in jupytext's percent format. */
export function isJobFile(path: string): boolean {
  return /[^/]\.(ipynb|py)$/.test(path);
}

/** A file's name without its `.ipynb` or `.py`: a job's default name. */
export function jobBaseName(path: string): string {
  return path.split('/').pop()!.replace(/\.(ipynb|py)$/, '');
}

/** Text for a field: a recommendation for "auto" parameters when there is one. */
export function initialText(param: Parameter, recommended?: unknown): string {
  if (recommended !== undefined && recommended !== null && param.default === 'auto') {
    return toText(recommended);
  }
  if (param.default === null && param.default_source) {
    return param.default_source;
  }
  return toText(param.default);
}

export function toText(value: unknown): string {
  if (typeof value === 'string') {
    return value;
  }
  if (value === null || value === undefined) {
    return '';
  }
  return JSON.stringify(value);
}

export class ParameterError extends Error {
  constructor(
    readonly parameter: string,
    message: string
  ) {
    super(message);
  }
}

/** Turn a field's text into a value of one of the parameter's types. */
export function parseValue(param: Parameter, text: string): unknown {
  const types = param.types.length ? param.types : ['any'];
  const trimmed = text.trim();
  const tryJson = (): unknown => {
    try {
      return JSON.parse(trimmed);
    } catch {
      return undefined;
    }
  };
  for (const type of types) {
    switch (type) {
      case 'int':
        if (/^[-+]?\d+$/.test(trimmed)) {
          return parseInt(trimmed, 10);
        }
        break;
      case 'float':
        if (trimmed !== '' && isFinite(Number(trimmed))) {
          return Number(trimmed);
        }
        break;
      case 'bool':
        if (/^(true|false)$/i.test(trimmed)) {
          return /^true$/i.test(trimmed);
        }
        break;
      case 'none':
        if (/^(none|null)$/i.test(trimmed) || trimmed === '') {
          return null;
        }
        break;
      case 'list':
      case 'dict': {
        const value = tryJson();
        if (type === 'list' ? Array.isArray(value) : isPlainObject(value)) {
          return value;
        }
        break;
      }
      case 'literal':
        if (param.choices?.some(c => toText(c) === trimmed)) {
          return param.choices.find(c => toText(c) === trimmed);
        }
        break;
      case 'str':
        return text;
      case 'any': {
        const value = tryJson();
        return value === undefined ? text : value;
      }
    }
  }
  throw new ParameterError(param.name, `${param.name}: expected ${param.type}`);
}

/** The parameters to send: parsed values that differ from the defaults. */
export function changedValues(
  params: Parameter[],
  texts: Record<string, string>
): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const param of params) {
    const text = texts[param.name];
    if (text === undefined) {
      continue;
    }
    const value = parseValue(param, text);
    if (param.required || !sameValue(value, param.default)) {
      out[param.name] = value;
    }
  }
  return out;
}

function sameValue(a: unknown, b: unknown): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Recommendations by parameter name from `GET hardware/recommendations`. */
export function recommendationValues(answer: any): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  const settings = answer?.settings ?? answer?.recommendations ?? answer ?? {};
  for (const [name, entry] of Object.entries(settings)) {
    if (entry && typeof entry === 'object' && 'value' in (entry as any)) {
      out[name] = (entry as any).value;
    }
  }
  return out;
}
