// The local stack's OpenID Connect provider: oidc-provider (a certified OpenID Provider library)
// with demo users per role, playing the team's identity provider (Cognito, Okta, Entra ID…) on
// loopback. Agents sign in with the authorization code flow and PKCE; the ID token carries the
// workspace and roles Switchboard maps (OIDC_WORKSPACE_CLAIM=workspace, OIDC_ROLE_CLAIM=roles).
//
//   node infra/oidc/server.mjs --port 8855   → prints "listening 8855"
//
// Local only: the sign-in page asks for a user name and no password, and /_local/users adds users
// (tests give each of their workspaces its own people).
import { createServer } from 'node:http';
import { createPrivateKey, generateKeyPairSync, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import Provider from 'oidc-provider';

const args = process.argv.slice(2);
const portArg = args.indexOf('--port');
const port = portArg >= 0 ? Number(args[portArg + 1]) : 0;

export const CLIENT_ID = 'switchboard-console';

// login → { workspace, roles, name, email }
const users = new Map([
  ['ada', { workspace: 'demo', roles: ['admin'], name: 'Ada (admin)' }],
  ['sue', { workspace: 'demo', roles: ['supervisor'], name: 'Sue (supervisor)' }],
  ['alice', { workspace: 'demo', roles: ['agent'], name: 'Alice (agent)' }],
  ['fin', { workspace: 'demo', roles: ['finance'], name: 'Fin (finance)' }],
]);

const loginPattern = /^[A-Za-z0-9_.-]{1,64}$/;

// The signing key: `--keys <file> --kid <kid>` takes a test key (events/oidc/test-keys.json, so the
// end-to-end tests can also sign tokens the provider's JWKS vouches for, with claims it would never
// issue: another audience, expired); otherwise a fresh key per start.
function signingKey() {
  const keysArg = args.indexOf('--keys');
  if (keysArg >= 0) {
    const kidArg = args.indexOf('--kid');
    const kid = kidArg >= 0 ? args[kidArg + 1] : 'rsa-key-1';
    const pem = JSON.parse(readFileSync(args[keysArg + 1], 'utf8'))[kid].pem;
    return { ...createPrivateKey(pem).export({ format: 'jwk' }), kid, use: 'sig', alg: 'RS256' };
  }
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  return { ...privateKey.export({ format: 'jwk' }), kid: `local-${randomBytes(6).toString('hex')}`, use: 'sig', alg: 'RS256' };
}

// The console signs in at <origin>/callback: `make run` serves it on port 5173; the browser tests
// start the stack on free ports and name their console's origins in SWITCHBOARD_CONSOLE_ORIGINS.
const consoleOrigins = [
  'http://127.0.0.1:5173',
  'http://localhost:5173',
  ...(process.env.SWITCHBOARD_CONSOLE_ORIGINS || '').split(',').map((o) => o.trim()).filter(Boolean),
];
const redirectUris = ['http://127.0.0.1/callback', ...consoleOrigins.map((o) => `${o}/callback`)];

function configuration() {
  return {
    clients: [{
      client_id: CLIENT_ID,
      token_endpoint_auth_method: 'none',
      application_type: 'web',
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      redirect_uris: redirectUris,
      post_logout_redirect_uris: redirectUris.map((u) => u.replace(/callback$/, '')),
    }],
    pkce: { required: () => true },
    claims: {
      openid: ['sub'],
      profile: ['name', 'preferred_username'],
      email: ['email'],
      switchboard: ['workspace', 'roles'],
    },
    // The ID token carries the scopes' claims (what the API's authorizer reads), not only userinfo.
    conformIdTokenClaims: false,
    findAccount: async (_ctx, sub) => {
      const u = users.get(sub);
      if (!u) return undefined;
      return {
        accountId: sub,
        claims: async () => ({
          sub,
          name: u.name,
          preferred_username: sub,
          email: u.email ?? `${sub}@${u.workspace}.switchboard.test`,
          workspace: u.workspace,
          roles: u.roles,
        }),
      };
    },
    // First-party console: no consent screen; the grant covers what the console asks for.
    loadExistingGrant: async (ctx) => {
      const id = ctx.oidc.result?.consent?.grantId || ctx.oidc.session.grantIdFor(ctx.oidc.client.clientId);
      if (id) return ctx.oidc.provider.Grant.find(id);
      const grant = new ctx.oidc.provider.Grant({ clientId: ctx.oidc.client.clientId, accountId: ctx.oidc.session.accountId });
      grant.addOIDCScope('openid profile email switchboard offline_access');
      await grant.save();
      return grant;
    },
    interactions: { url: (_ctx, interaction) => `/interaction/${interaction.uid}` },
    features: { devInteractions: { enabled: false } },
    clientBasedCORS: () => true,
    cookies: { keys: [randomBytes(32).toString('hex')] },
    jwks: { keys: [signingKey()] },
    ttl: { IdToken: 3600, AccessToken: 3600, AuthorizationCode: 120, Interaction: 600, Session: 86400, Grant: 86400 },
    renderError: async (ctx, out) => {
      ctx.type = 'json';
      ctx.body = out;
    },
  };
}

function escape(s) {
  return String(s).replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]);
}

async function readBody(req) {
  const chunks = [];
  for await (const c of req) chunks.push(c);
  return Buffer.concat(chunks).toString('utf8');
}

function loginPage(uid, error) {
  const options = [...users.entries()]
    .filter(([, u]) => u.workspace === 'demo')
    .map(([login, u]) => `<li><code>${escape(login)}</code>: ${escape(u.name)}</li>`)
    .join('');
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Sign in: local identity provider</title>
<style>body{font-family:system-ui,sans-serif;max-width:28rem;margin:4rem auto;color:#1f2937}input,button{font-size:1rem;padding:.5rem}</style></head>
<body><h1>Sign in to Switchboard</h1><p>The local identity provider (no passwords: local only). Demo users:</p><ul>${options}</ul>
${error ? `<p role="alert" style="color:#b91c1c">${escape(error)}</p>` : ''}
<form method="post" action="/interaction/${escape(uid)}/login"><label>User <input name="login" autofocus required></label>
<button type="submit">Sign in</button></form></body></html>`;
}

const provider = new Provider(`http://127.0.0.1:${port}`, configuration());
provider.proxy = false;
const callback = provider.callback();

const server = createServer(async (req, res) => {
  try {
    const url = new URL(req.url, `http://127.0.0.1:${port}`);
    const m = url.pathname.match(/^\/interaction\/([^/]+)(\/login)?$/);
    if (m) {
      const details = await provider.interactionDetails(req, res);
      if (req.method === 'GET') {
        res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
        return res.end(loginPage(details.uid));
      }
      const form = new URLSearchParams(await readBody(req));
      const login = (form.get('login') || '').trim();
      if (!users.has(login)) {
        res.writeHead(401, { 'content-type': 'text/html; charset=utf-8' });
        return res.end(loginPage(details.uid, `No user ${login}`));
      }
      if (users.get(login).disabled) {
        res.writeHead(403, { 'content-type': 'text/html; charset=utf-8' });
        return res.end(loginPage(details.uid, `${login} may no longer sign in`));
      }
      return provider.interactionFinished(req, res, { login: { accountId: login } }, { mergeWithLastSubmission: false });
    }
    if (url.pathname === '/_local/users' && req.method === 'POST') {
      const u = JSON.parse(await readBody(req));
      if (!loginPattern.test(u.login || '') || !u.workspace || !Array.isArray(u.roles)) {
        res.writeHead(400, { 'content-type': 'application/json' });
        return res.end(JSON.stringify({ error: 'expected {login, workspace, roles: [..], name?, email?, disabled?}' }));
      }
      users.set(u.login, { workspace: u.workspace, roles: u.roles, name: u.name || u.login, email: u.email, disabled: !!u.disabled });
      res.writeHead(201, { 'content-type': 'application/json' });
      return res.end(JSON.stringify({ login: u.login }));
    }
    const one = url.pathname.match(/^\/_local\/users\/([^/]+)$/);
    if (one && req.method === 'GET') {
      const u = users.get(decodeURIComponent(one[1]));
      res.writeHead(u ? 200 : 404, { 'content-type': 'application/json' });
      return res.end(JSON.stringify(u ? { login: decodeURIComponent(one[1]), ...u } : { error: 'no such user' }));
    }
    return callback(req, res);
  } catch (e) {
    res.writeHead(400, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ error: String(e && e.message ? e.message : e) }));
  }
});

server.listen(port, '127.0.0.1', () => {
  console.log(`listening ${server.address().port}`);
});
