/**
 * Line charts with uPlot (small, maintained, canvas): colours from the Lab theme, redrawn
 * when the theme changes, sized to their container. uPlot loads on first use (its own chunk).
 */
import type uPlot from 'uplot';
import { Columns } from '../model/series';

type UPlotClass = typeof uPlot;
let loading: Promise<UPlotClass> | null = null;

function loadUPlot(): Promise<UPlotClass> {
  if (!loading) {
    loading = Promise.all([import('uplot'), import('uplot/dist/uPlot.min.css')]).then(
      ([module]) => ((module as any).default ?? module) as UPlotClass
    );
  }
  return loading;
}

const PALETTE_VARS = [
  '--jp-brand-color1', '--jp-warn-color1', '--jp-success-color1', '--jp-error-color1',
  '--jp-accent-color1', '--jp-brand-color3', '--jp-warn-color3', '--jp-success-color3'
];

function cssVar(name: string, fallback: string): string {
  const value = getComputedStyle(document.body).getPropertyValue(name).trim();
  return value || fallback;
}

export interface ChartOptions {
  title?: string;
  /** Format of y values on the axis. */
  yFormat?: (v: number) => string;
  xTime?: boolean;
  height?: number;
  yRange?: [number, number];
}

export class LineChart {
  readonly node: HTMLDivElement;
  private plot: uPlot | null = null;
  private columns: Columns = { names: [], data: [[]] };
  private resize: ResizeObserver;
  private theme: MutationObserver;
  private disposed = false;

  constructor(private options: ChartOptions = {}) {
    this.node = document.createElement('div');
    this.node.className = 'nb-chart';
    this.node.dir = 'ltr'; // time runs left to right whatever the language
    this.resize = new ResizeObserver(() => this.fit());
    this.resize.observe(this.node);
    this.theme = new MutationObserver(() => this.rebuild());
    this.theme.observe(document.body, { attributes: true, attributeFilter: ['data-jp-theme-name'] });
  }

  setData(columns: Columns): void {
    const sameSeries = columns.names.join('\0') === this.columns.names.join('\0');
    this.columns = columns;
    if (this.plot && sameSeries) {
      this.plot.setData(columns.data as uPlot.AlignedData);
    } else {
      this.rebuild();
    }
  }

  dispose(): void {
    this.disposed = true;
    this.resize.disconnect();
    this.theme.disconnect();
    this.plot?.destroy();
    this.plot = null;
  }

  private size(): { width: number; height: number } {
    return {
      width: Math.max(200, this.node.clientWidth || 400),
      height: this.options.height ?? 180
    };
  }

  private fit(): void {
    if (this.plot && this.node.clientWidth) {
      this.plot.setSize(this.size());
    }
  }

  private async rebuild(): Promise<void> {
    const UPlot = await loadUPlot();
    if (this.disposed) {
      return;
    }
    this.plot?.destroy();
    const text = cssVar('--jp-ui-font-color1', '#333');
    const grid = cssVar('--jp-border-color2', '#ddd');
    const font = `11px ${cssVar('--jp-ui-font-family', 'sans-serif')}`;
    const axis = (values?: (u: uPlot, splits: number[]) => string[]): uPlot.Axis => ({
      stroke: text,
      grid: { stroke: grid, width: 1 },
      ticks: { stroke: grid, width: 1 },
      font,
      values
    });
    const yFormat = this.options.yFormat;
    const options: uPlot.Options = {
      ...this.size(),
      title: this.options.title,
      scales: {
        x: { time: !!this.options.xTime },
        ...(this.options.yRange ? { y: { range: this.options.yRange } } : {})
      },
      legend: { show: true, live: false },
      cursor: { drag: { x: true, y: false } },
      axes: [axis(), axis(yFormat ? (_u, splits) => splits.map(yFormat) : undefined)],
      series: [
        {},
        ...this.columns.names.map((name, i) => ({
          label: name,
          stroke: cssVar(PALETTE_VARS[i % PALETTE_VARS.length], '#1976d2'),
          width: 1.5,
          spanGaps: true,
          points: { show: false }
        }))
      ]
    };
    this.plot = new UPlot(options, this.columns.data as uPlot.AlignedData, this.node);
  }
}
