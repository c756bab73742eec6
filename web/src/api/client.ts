// The REST API's typed client: every path, parameter and body comes from the API's own OpenAPI
// document (docs/openapi.json → openapi.d.ts by `npm run gen`), through openapi-fetch.
import createClient, { type Middleware } from 'openapi-fetch';
import type { components, paths } from './openapi';

export type Schemas = components['schemas'];
export type Conversation = Schemas['Conversation'];
export type Message = Schemas['Message'];
export type Contact = Schemas['Contact'];
export type Channel = Schemas['Channel'];
export type DeliveryStatus = Schemas['DeliveryStatus'];
export type AgentPush = Schemas['AgentPush'];
export type Notification = Schemas['Notification'];
export type ClientAction = Schemas['ClientAction'];
export type CostPreview = Schemas['CostPreview'];
export type Hit = Schemas['Hit'];
export type Note = Schemas['Note'];
export type ErrorBody = Schemas['ErrorBody'];

export type Api = ReturnType<typeof createClient<paths, 'application/json'>>;

/** A client for `baseUrl` that signs every request with the current token. */
export function apiClient(baseUrl: string, token: () => string | null): Api {
  const client = createClient<paths, 'application/json'>({ baseUrl });
  const auth: Middleware = {
    onRequest({ request }) {
      const t = token();
      if (t) request.headers.set('Authorization', `Bearer ${t}`);
      return request;
    },
  };
  client.use(auth);
  return client;
}

/** The message of an error answer (`{"error": {"code", "message"}}`), or the status. */
export function errorText(error: unknown, response?: Response): string {
  const body = error as Partial<ErrorBody> | undefined;
  if (body && typeof body === 'object' && body.error?.message) return body.error.message;
  const m = (error as { message?: unknown } | undefined)?.message;
  if (typeof m === 'string') return m;
  return response ? `${response.status} ${response.statusText}` : 'the request failed';
}
