// Charts with uPlot (small, fast, canvas): lines over the hours of a day, bars per channel. Loaded
// only with the report pages, so the inbox's first load stays small.
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';
import { useEffect, useRef } from 'preact/hooks';

export interface Series {
  label: string;
  values: (number | null)[];
  color: string;
}

interface Props {
  title: string;
  /** Labels of the x axis (hours "00"…"23", channels…). */
  x: string[];
  series: Series[];
  bars?: boolean;
  unit?: string;
}

export function Chart({ title, x, series, bars, unit }: Props) {
  const host = useRef<HTMLDivElement>(null);
  useEffect(() => {
    const el = host.current;
    if (!el) return;
    const xs = x.map((_, i) => i);
    const opts: uPlot.Options = {
      title,
      width: Math.max(320, el.clientWidth),
      height: 240,
      // Categories (bars) sit at whole numbers with half a slot either side; hours are a line.
      scales: { x: { time: false, ...(bars ? { range: [-0.5, Math.max(0.5, xs.length - 0.5)] as uPlot.Range.MinMax } : {}) } },
      axes: [
        { values: (_u, ticks) => ticks.map((t) => x[t] ?? ''), ...(bars ? { splits: () => xs } : {}) },
        { values: (_u, ticks) => ticks.map((t) => `${t}${unit ?? ''}`), size: 60 },
      ],
      series: [
        {},
        ...series.map((s) => ({
          label: s.label,
          stroke: s.color,
          fill: bars ? `${s.color}99` : undefined,
          width: bars ? 0 : 2,
          paths: bars ? uPlot.paths.bars?.({ size: [0.6, 48] }) : undefined,
          points: { show: !bars },
        })),
      ],
    };
    const plot = new uPlot(opts, [xs, ...series.map((s) => s.values)] as uPlot.AlignedData, el);
    const resize = () => plot.setSize({ width: Math.max(320, el.clientWidth), height: 240 });
    window.addEventListener('resize', resize);
    return () => {
      window.removeEventListener('resize', resize);
      plot.destroy();
    };
  }, [title, x, series, bars, unit]);
  return <div class="chart" ref={host} role="img" aria-label={`${title}: ${series.map((s) => s.label).join(', ')}`} />;
}

/** Downloads an authorised CSV answer as a file (a plain link cannot carry the bearer token). */
export async function downloadCsv(url: string, token: string, name: string): Promise<void> {
  const res = await fetch(url, { headers: { authorization: `Bearer ${token}` } });
  if (!res.ok) throw new Error(`${res.status} ${res.statusText}`);
  const blob = await res.blob();
  const a = document.createElement('a');
  a.href = URL.createObjectURL(blob);
  a.download = name;
  a.click();
  setTimeout(() => URL.revokeObjectURL(a.href), 10_000);
}

/** A report's Refresh and Download CSV buttons (the CSV is the same report, `format=csv`). */
export function ReportButtons(props: { onRefresh(): void; csvUrl: string; token: string; fileName: string; onError(m: string): void }) {
  const { onRefresh, csvUrl, token, fileName, onError } = props;
  return (
    <>
      <button type="button" onClick={onRefresh}>
        Refresh
      </button>
      <button type="button" onClick={() => void downloadCsv(csvUrl, token, fileName).catch((e: Error) => onError(e.message))}>
        Download CSV
      </button>
    </>
  );
}
