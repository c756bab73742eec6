// Where the console finds its API and identity provider: `/config.json` beside the console's files
// (written by the deploy into the console bucket; served by `make run` locally), so one build serves
// every stack.
export interface ConsoleConfig {
  /** The HTTP API (`https://…execute-api…` or the custom domain), no trailing slash. */
  api_url: string;
  /** The agents' WebSocket API (`wss://…`). */
  socket_url: string;
  /** The team's OpenID provider: the console signs in with the authorization code flow + PKCE. */
  oidc: {
    issuer: string;
    client_id: string;
    /** Scopes to ask for (Cognito: `openid profile email`). */
    scope?: string;
    /** The claim holding the roles (`roles`; Cognito: `cognito:groups`) and the agent id (`sub`). */
    role_claim?: string;
    agent_claim?: string;
  } | null;
  /** Local stacks only: HS256 development tokens may be pasted instead of signing in. */
  dev_tokens?: boolean;
}

export async function loadConfig(): Promise<ConsoleConfig> {
  const res = await fetch('/config.json', { cache: 'no-store' });
  if (!res.ok) throw new Error(`config.json: ${res.status}`);
  const c = (await res.json()) as ConsoleConfig;
  return { ...c, api_url: c.api_url.replace(/\/$/, '') };
}
