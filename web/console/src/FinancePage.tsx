// Finance: what a month cost, by channel, direction, country, team or agent (estimate, AWS share,
// what the providers reported), as a chart and a table with CSV download; budgets and their spend.
import { useEffect, useState } from 'preact/hooks';
import { errorText, type Api, type Schemas } from '../../src/api/client';
import { Chart, ReportButtons } from './Chart';

type Report = Schemas['Report'];
type Budgets = Schemas['Budgets'];
const BY = ['channel', 'direction', 'country', 'team', 'agent'] as const;

export default function FinancePage({ api, apiUrl, token }: { api: Api; apiUrl: string; token: string }) {
  const [month, setMonth] = useState(new Date().toISOString().slice(0, 7));
  const [by, setBy] = useState<(typeof BY)[number]>('channel');
  const [report, setReport] = useState<Report | null>(null);
  const [budgets, setBudgets] = useState<Budgets | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [reload, setReload] = useState(0);

  useEffect(() => {
    let live = true;
    void (async () => {
      const [r, b] = await Promise.all([
        api.GET('/finance/reports/{month}', { params: { path: { month }, query: { by } } }),
        api.GET('/finance/budgets', { params: { query: { month } } }),
      ]);
      if (!live) return;
      if (r.data) {
        setReport(r.data);
        setError(null);
      } else setError(errorText(r.error, r.response));
      setBudgets(b.data ?? null);
    })();
    return () => {
      live = false;
    };
  }, [api, month, by, reload]);

  const label = (r: Schemas['ReportRow']) => (r.direction ? `${r.key} ${r.direction}` : r.key);
  return (
    <div class="page">
      <h1>Costs</h1>
      <form class="toolbar" onSubmit={(e) => e.preventDefault()}>
        <label>
          Month <input type="month" value={month} onChange={(e) => setMonth(e.currentTarget.value)} />
        </label>
        <label>
          By
          <select value={by} onChange={(e) => setBy(e.currentTarget.value as typeof by)}>
            {BY.map((b) => (
              <option key={b} value={b}>
                {b}
              </option>
            ))}
          </select>
        </label>
        <ReportButtons
          onRefresh={() => setReload((n) => n + 1)}
          csvUrl={`${apiUrl}/finance/reports/${month}?by=${by}&format=csv`}
          token={token}
          fileName={`costs-${month}-by-${by}.csv`}
          onError={setError}
        />
      </form>
      {error && <p role="alert">{error}</p>}
      {budgets && budgets.budgets.length > 0 && (
        <section class="cards" aria-label="Budgets">
          {budgets.budgets.map((b) => (
            <div class="card" key={b.scope}>
              <strong>{b.scope === 'workspace' ? 'Workspace budget' : `${b.scope} budget`}</strong>
              <meter min={0} max={100} value={Math.min(100, b.percent_used)} aria-label="share of the budget spent" />
              <span>
                {b.spent.amount} of {b.monthly_limit.amount} {b.currency} ({b.percent_used.toFixed(0)} %)
                {b.paid_sends_stopped && <strong class="overdue"> paid sends stopped</strong>}
              </span>
            </div>
          ))}
        </section>
      )}
      {report && (
        <>
          {report.rows.length > 0 && (
            <Chart
              title={`${month}: cost by ${by} (${report.currency})`}
              x={report.rows.map(label)}
              bars
              series={[
                { label: 'Provider (estimate)', values: report.rows.map((r) => Number(r.provider_estimate.micros) / 1e6), color: '#2450d8' },
                { label: 'AWS', values: report.rows.map((r) => Number(r.aws.micros) / 1e6), color: '#b45309' },
              ]}
            />
          )}
          <table>
            <caption>
              {month} by {by}, in {report.currency}
            </caption>
            <thead>
              <tr>
                <th scope="col">{by}</th>
                <th scope="col">Messages</th>
                <th scope="col">Provider (estimate)</th>
                <th scope="col">AWS</th>
                <th scope="col">Total</th>
                <th scope="col">Provider reported</th>
              </tr>
            </thead>
            <tbody>
              {[...report.rows, report.total].map((r) => (
                <tr key={label(r)} class={r === report.total ? 'total' : ''}>
                  <td>{label(r)}</td>
                  <td>{r.messages}</td>
                  <td>{r.provider_estimate.amount}</td>
                  <td>{r.aws.amount}</td>
                  <td>{r.estimated_total.amount}</td>
                  <td>
                    {r.actual.amount} ({r.reconciled} of {r.messages})
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </>
      )}
    </div>
  );
}
