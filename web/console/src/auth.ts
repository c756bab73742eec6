// Sign-in through the team's OpenID provider with oidc-client-ts: the authorization code flow with
// PKCE, the ID token kept in this tab's session storage (never in localStorage, never in a URL).
// The API takes the ID token (its JWT authorizer checks `aud` = the console's client id).
import { UserManager, WebStorageStateStore, type User } from 'oidc-client-ts';
import type { ConsoleConfig } from './config';

export interface Session {
  token: string;
  /** The agent id the API knows this person by (the token's `sub`). */
  agent: string;
  name: string;
  roles: string[];
  expiresAt: number | null;
}

const DEV_KEY = 'switchboard.dev_token';

function decodeClaims(jwt: string): Record<string, unknown> {
  const part = jwt.split('.')[1] ?? '';
  const json = atob(part.replace(/-/g, '+').replace(/_/g, '/'));
  return JSON.parse(new TextDecoder().decode(Uint8Array.from(json, (c) => c.charCodeAt(0)))) as Record<string, unknown>;
}

/** The person a token names, read with the stack's claim names (dev tokens: `role`, `sub`). */
function fromToken(token: string, claims: { role_claim?: string; agent_claim?: string } = {}): Session {
  const c = decodeClaims(token);
  const r = c[claims.role_claim ?? 'roles'] ?? c.role;
  const roles = Array.isArray(r) ? r.map(String) : typeof r === 'string' ? r.split(/[ ,]+/).filter(Boolean) : [];
  const agent = String(c[claims.agent_claim ?? 'sub'] ?? c.sub ?? '');
  return {
    token,
    agent,
    name: String(c.name ?? c.preferred_username ?? agent),
    roles,
    expiresAt: typeof c.exp === 'number' ? c.exp * 1000 : null,
  };
}

export class Auth {
  private readonly manager: UserManager | null;

  constructor(private readonly config: ConsoleConfig) {
    this.manager = config.oidc
      ? new UserManager({
          authority: config.oidc.issuer,
          client_id: config.oidc.client_id,
          redirect_uri: `${location.origin}/callback`,
          post_logout_redirect_uri: `${location.origin}/`,
          response_type: 'code',
          scope: config.oidc.scope ?? 'openid profile email switchboard',
          userStore: new WebStorageStateStore({ store: window.sessionStorage }),
          automaticSilentRenew: false,
        })
      : null;
  }

  /** The session after a redirect back from the provider, or the one this tab already has. */
  async current(): Promise<Session | null> {
    if (this.config.dev_tokens) {
      const hash = new URLSearchParams(location.hash.slice(1));
      const pasted = hash.get('dev_token');
      if (pasted) {
        sessionStorage.setItem(DEV_KEY, pasted);
        history.replaceState(null, '', location.pathname);
      }
      const dev = sessionStorage.getItem(DEV_KEY);
      if (dev) {
        const s = fromToken(dev);
        if (!s.expiresAt || s.expiresAt > Date.now()) return s;
        sessionStorage.removeItem(DEV_KEY);
      }
    }
    if (!this.manager) return null;
    let user: User | null;
    if (location.pathname === '/callback') {
      user = await this.manager.signinRedirectCallback();
      history.replaceState(null, '', '/');
    } else {
      user = await this.manager.getUser();
    }
    if (!user || user.expired || !user.id_token) return null;
    return fromToken(user.id_token, this.config.oidc ?? {});
  }

  async signIn(): Promise<void> {
    if (!this.manager) throw new Error('no identity provider is configured');
    await this.manager.signinRedirect();
  }

  async signOut(): Promise<void> {
    sessionStorage.removeItem(DEV_KEY);
    if (this.manager) {
      await this.manager.removeUser();
    }
    location.assign('/');
  }
}
