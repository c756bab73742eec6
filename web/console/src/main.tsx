import { render } from 'preact';
import { App } from './App';
import { Auth } from './auth';
import { loadConfig } from './config';
import './styles.css';

async function boot(root: HTMLElement): Promise<void> {
  const config = await loadConfig();
  const auth = new Auth(config);
  const session = await auth.current();
  render(<App config={config} auth={auth} session={session} />, root);
}

const root = document.getElementById('app');
if (root) {
  boot(root).catch((e: unknown) => {
    root.textContent = `The console could not start: ${e instanceof Error ? e.message : String(e)}`;
  });
}
