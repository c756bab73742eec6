// Analytics for supervisors: volumes, first-response and resolution percentiles and CSAT per
// channel (or agent, or team) over a date range, and the day's shape by hour; CSV for spreadsheets.
import { useEffect, useMemo, useState } from 'preact/hooks';
import { errorText, type Api, type Schemas } from '../../src/api/client';
import { Chart, ReportButtons } from './Chart';

type Analytics = Schemas['Analytics'];

const day = (d: Date) => d.toISOString().slice(0, 10);
const minutes = (s: number | null | undefined) => (s == null ? '—' : s < 90 ? `${Math.round(s)} s` : `${(s / 60).toFixed(1)} min`);

export default function ReportsPage({ api, apiUrl, token }: { api: Api; apiUrl: string; token: string }) {
  const [to, setTo] = useState(day(new Date()));
  const [from, setFrom] = useState(day(new Date(Date.now() - 6 * 86400_000)));
  const [dimension, setDimension] = useState<'channel' | 'agent' | 'team'>('channel');
  const [data, setData] = useState<Analytics | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [reload, setReload] = useState(0);

  useEffect(() => {
    let live = true;
    void api.GET('/analytics', { params: { query: { from, to, dimension } } }).then((r) => {
      if (!live) return;
      if (r.data) {
        setData(r.data);
        setError(null);
      } else setError(errorText(r.error, r.response));
    });
    return () => {
      live = false;
    };
  }, [api, from, to, dimension, reload]);

  const hours = useMemo(() => {
    const rows = new Map((data?.by_hour_of_day ?? []).map((r) => [r.key, r]));
    const keys = Array.from({ length: 24 }, (_, h) => String(h).padStart(2, '0'));
    return {
      keys,
      inbound: keys.map((k) => rows.get(k)?.counts.messages_in ?? 0),
      p50: keys.map((k) => {
        const v = rows.get(k)?.first_response_seconds.p50;
        return v == null ? null : v / 60;
      }),
    };
  }, [data]);

  return (
    <div class="page">
      <h1>Reports</h1>
      <form class="toolbar" onSubmit={(e) => e.preventDefault()}>
        <label>
          From <input type="date" value={from} onChange={(e) => setFrom(e.currentTarget.value)} />
        </label>
        <label>
          To <input type="date" value={to} onChange={(e) => setTo(e.currentTarget.value)} />
        </label>
        <label>
          By
          <select value={dimension} onChange={(e) => setDimension(e.currentTarget.value as typeof dimension)}>
            <option value="channel">Channel</option>
            <option value="agent">Agent</option>
            <option value="team">Team</option>
          </select>
        </label>
        <ReportButtons
          onRefresh={() => setReload((n) => n + 1)}
          csvUrl={`${apiUrl}/analytics?from=${from}&to=${to}&dimension=${dimension}&format=csv`}
          token={token}
          fileName={`analytics-${from}-${to}.csv`}
          onError={setError}
        />
      </form>
      {error && <p role="alert">{error}</p>}
      {data && (
        <>
          <Chart
            title="By hour of day (UTC)"
            x={hours.keys}
            series={[
              { label: 'Messages in', values: hours.inbound, color: '#2450d8' },
              { label: 'First response p50 (min)', values: hours.p50, color: '#b45309' },
            ]}
          />
          <table>
            <caption>
              {from} to {to}, by {dimension} (percentiles within {Math.round(data.relative_accuracy * 100)} %)
            </caption>
            <thead>
              <tr>
                <th scope="col">{dimension}</th>
                <th scope="col">Conversations</th>
                <th scope="col">In</th>
                <th scope="col">Out</th>
                <th scope="col">First response p50</th>
                <th scope="col">p90</th>
                <th scope="col">Resolution p50</th>
                <th scope="col">SLA breaches</th>
                <th scope="col">CSAT</th>
              </tr>
            </thead>
            <tbody>
              {data.rows.length === 0 && (
                <tr>
                  <td colSpan={9}>No activity in this range yet (counts arrive within a minute).</td>
                </tr>
              )}
              {data.rows.map((r) => (
                <tr key={r.key}>
                  <td>{r.key}</td>
                  <td>{r.counts.conversations ?? 0}</td>
                  <td>{r.counts.messages_in ?? 0}</td>
                  <td>{r.counts.messages_out ?? 0}</td>
                  <td>{minutes(r.first_response_seconds.p50)}</td>
                  <td>{minutes(r.first_response_seconds.p90)}</td>
                  <td>{minutes(r.resolution_seconds.p50)}</td>
                  <td>{r.counts.sla_breaches ?? 0}</td>
                  <td>{r.csat_score == null ? '—' : `${Math.round(r.csat_score * 100)} %`}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </>
      )}
    </div>
  );
}
