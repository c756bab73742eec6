//! Sign-in end to end on the local stack: agents sign in through the local OpenID provider (the
//! `oidc-provider` package: the authorization code flow with PKCE, as the console does) and use
//! its ID token on the REST API (behind the gateway's JWT authorizer, as API Gateway's) and the
//! WebSocket; the role comes from the token's claims. Tokens from another issuer, for another
//! audience, expired, or signed with a key the provider does not publish (rotated out) are refused,
//! and a web chat visitor's token opens no agent route.

use domain::ports::ConnectionStore;
use domain::Role;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::json;
use switchboard_e2e::*;
use switchboard_local::oidc;

fn issuer() -> String {
    std::env::var(switchboard_local::services::OIDC_ISSUER_ENV)
        .expect("the local OpenID provider runs with the other local servers (make test)")
}

/// A token signed with one of the test keys (events/oidc/test-keys.json); the provider signs with
/// `rsa-key-1`, so that key's tokens pass the signature check and fail only on their claims.
fn forge(kid: &str, claims: serde_json::Value) -> String {
    let keys: serde_json::Value =
        serde_json::from_str(include_str!("../../events/oidc/test-keys.json")).expect("test keys");
    let key = EncodingKey::from_rsa_pem(keys[kid]["pem"].as_str().unwrap().as_bytes()).unwrap();
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some(kid.to_owned());
    jsonwebtoken::encode(&header, &claims, &key).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn agents_sign_in_with_the_identity_provider_and_foreign_expired_or_visitor_tokens_are_refused() {
    let t = spawn_stack().await;
    let issuer = issuer();
    let ws = t.workspace.to_string();
    let suffix = ulid::Ulid::new().to_string().to_lowercase();
    let (admin, agent) = (format!("ada-{suffix}"), format!("ann-{suffix}"));
    oidc::add_user(&issuer, &admin, &ws, &["admin"]).await.unwrap();
    oidc::add_user(&issuer, &agent, &ws, &["agent"]).await.unwrap();

    // The admin signs in (code + PKCE) and works the API with the ID token.
    let admin_token = oidc::sign_in(&issuer, &admin).await.unwrap();
    let (s, agents) = t.send_as("GET", "/agents", &admin_token, None).await;
    assert_eq!(s, 200, "{agents}");
    let profile = json!({ "capacity": 300, "skills": [], "teams": [] });
    let (s, b) = t.send_as("PUT", &format!("/agents/{agent}"), &admin_token, Some(profile)).await;
    assert!(s == 200 || s == 201, "{s} {b}");
    // The audit trail names the person the identity provider vouched for.
    let (s, audit) = t.send_as("GET", "/audit", &admin_token, None).await;
    assert_eq!(s, 200, "{audit}");
    assert!(audit.to_string().contains(&admin), "{audit}");

    // The agent's role comes from the token: the inbox yes, admin routes no.
    let agent_token = oidc::sign_in(&issuer, &agent).await.unwrap();
    let (s, _) = t.send_as("GET", "/conversations", &agent_token, None).await;
    assert_eq!(s, 200);
    let (s, b) = t.send_as("PUT", "/agents/someone", &agent_token, Some(json!({ "capacity": 100 }))).await;
    assert_eq!(s, 403, "{b}");

    // Their socket opens with the same token; a forged one never does.
    let socket = connect_socket(&t.stack.ws_url, &agent_token, true).await;
    assert!(socket.is_ok(), "the ID token opens the agent socket");

    // Refused by the authorizer: each token below is wrong in one way only.
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let claims = |iss: &str, aud: &str, exp: i64| {
        json!({ "iss": iss, "aud": aud, "sub": agent, "exp": exp, "iat": now - 60,
                "workspace": ws, "roles": ["admin"] })
    };
    let aud = switchboard_local::dev::OIDC_CLIENT_ID;
    let good = forge("rsa-key-1", claims(&issuer, aud, now + 600));
    let (s, _) = t.send_as("GET", "/agents", &good, None).await;
    assert_eq!(s, 200, "the control: the provider's key, its issuer, our audience, in date");
    for (why, token) in [
        ("another issuer", forge("rsa-key-1", claims("https://login.other.example", aud, now + 600))),
        ("another audience", forge("rsa-key-1", claims(&issuer, "someone-elses-app", now + 600))),
        ("expired", forge("rsa-key-1", claims(&issuer, aud, now - 300))),
        ("a key the provider does not publish (rotated out)", forge("rsa-key-2", claims(&issuer, aud, now + 600))),
    ] {
        let (s, b) = t.send_as("GET", "/conversations", &token, None).await;
        assert_eq!(s, 401, "{why}: {b}");
        assert_eq!(connect_socket(&t.stack.ws_url, &token, false).await.err(), Some(401), "{why} (socket)");
    }
    // A socket lasts as long as its sign-in: once the token expires its actions are refused and
    // the next fan-out closes it (the console reconnects with a fresh token, and any new role).
    let short = forge("rsa-key-1", claims(&issuer, aud, now + 3));
    let mut expiring = connect_socket(&t.stack.ws_url, &short, false).await.expect("open while the token is valid");
    tokio::time::sleep(std::time::Duration::from_secs(4)).await;
    let answer = expiring.act(json!({ "action": "presence", "status": "online" })).await;
    assert_eq!(answer["error"]["code"], "unauthorized", "{answer}");
    assert_eq!(t.text_in(&new_sid(), &random_number(), "hello").await.status(), 200);
    eventually("the expired socket closed and forgotten", || async {
        let conns = t.store.connections(&t.workspace).await.unwrap();
        (!conns
            .iter()
            .any(|c| c.agent.as_str() == agent && c.token_expires_at.is_some_and(|e| e.unix_timestamp() == now + 3)))
        .then_some(())
    })
    .await;

    let (s, _) = t.send_as("GET", "/conversations", "not-a-token", None).await;
    assert_eq!(s, 401);
    let res = t.http.get(t.url("/conversations")).send().await.unwrap();
    assert_eq!(res.status(), 401, "no token at all");

    // A web chat visitor's token is for the web chat routes only.
    let res =
        t.http.post(t.url(&format!("/webchat/{}/visitors", t.webchat_key))).json(&json!({})).send().await.unwrap();
    assert!(res.status().is_success(), "{}", res.status());
    let visitor: serde_json::Value = res.json().await.unwrap();
    let visitor_token = visitor["token"].as_str().expect("a visitor token").to_owned();
    for path in ["/conversations", "/agents", "/analytics"] {
        let (s, b) = t.send_as("GET", path, &visitor_token, None).await;
        assert_eq!(s, 401, "{path}: {b}");
    }
    assert_eq!(connect_socket(&t.stack.ws_url, &visitor_token, false).await.err(), Some(401));
    // CORS for the console's origins (the template's ConsoleUrls), as the HTTP API answers it.
    let preflight = |origin: &'static str| {
        t.http
            .request(reqwest::Method::OPTIONS, t.url("/conversations"))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "authorization,idempotency-key")
            .send()
    };
    let ok = preflight("http://localhost:5173").await.unwrap();
    assert_eq!(ok.status(), 204);
    assert_eq!(ok.headers()["access-control-allow-origin"], "http://localhost:5173");
    assert!(ok.headers()["access-control-allow-headers"].to_str().unwrap().contains("idempotency-key"));
    let other = preflight("https://evil.example").await.unwrap();
    assert!(other.headers().get("access-control-allow-origin").is_none(), "an unlisted origin gets no CORS");
    let refused = t.http.get(t.url("/conversations")).header("origin", "http://localhost:5173").send().await.unwrap();
    assert_eq!(refused.status(), 401);
    assert!(refused.headers().contains_key("access-control-allow-origin"), "the console can read a 401");

    // The dev token path (local only) still works beside the provider's.
    let (s, _) = t.send_as("GET", "/conversations", &t.token_as("alice", Role::Agent), None).await;
    assert_eq!(s, 200);
}

/// Issue 19's set-up, as a team does it after `sam deploy`: an admin signs in, names the
/// workspace and sets its HELP answer, connects a number and a widget key through the API (no
/// table writes by hand), and the number takes messages at once; another workspace cannot take
/// the number, and the widget answers only the site it was connected for.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_admin_sets_up_a_workspace_through_the_api_and_its_number_takes_messages() {
    let t = spawn_stack().await;
    let issuer = issuer();
    let suffix = ulid::Ulid::new().to_string().to_lowercase();
    let ws = format!("ws-new-{suffix}");
    let admin = format!("ada-{suffix}");
    oidc::add_user(&issuer, &admin, &ws, &["admin"]).await.unwrap();
    let token = oidc::sign_in(&issuer, &admin).await.unwrap();

    let help = "Globex support, 9-5 weekdays. Reply STOP to opt out.";
    let settings = json!({ "name": "Globex", "help_text": help, "max_sms_segments": 2 });
    let (s, b) = t.send_as("PUT", "/workspace", &token, Some(settings)).await;
    assert_eq!(s, 200, "{b}");
    let (s, b) = t.send_as("GET", "/workspace", &token, None).await;
    assert_eq!((s, b["workspace"].as_str(), b["settings"]["name"].as_str()), (200, Some(ws.as_str()), Some("Globex")));

    let number = random_number();
    let path = format!("/channels/sms/{number}");
    let (s, b) = t.send_as("PUT", &path, &token, Some(json!({ "display_name": "Globex line" }))).await;
    assert_eq!(s, 201, "{b}");
    let (s, _) = t.send_as("PUT", &path, &token, Some(json!({ "display_name": "Globex line" }))).await;
    assert_eq!(s, 200, "connecting again changes nothing");
    // The test stack's own workspace (another tenant) cannot take it.
    let (s, b) = t.send_as("PUT", &path, &t.token_as("ada", Role::Admin), None).await;
    assert_eq!(s, 409, "{b}");
    let key = format!("wk_{suffix}");
    let widget = json!({ "allowed_origins": ["https://shop.globex.example"] });
    let (s, b) = t.send_as("PUT", &format!("/channels/webchat/{key}"), &token, Some(widget)).await;
    assert_eq!(s, 201, "{b}");
    let (s, b) = t.send_as("GET", "/channels", &token, None).await;
    assert_eq!((s, b["channels"].as_array().map(Vec::len)), (200, Some(2)), "{b}");

    // The number works at once: a HELP to it is answered with the workspace's own text.
    let customer = random_number();
    let form = sms_form(&new_sid(), &customer, &number, "HELP");
    assert_eq!(t.post_signed("/webhooks/twilio/sms", &form, AUTH_TOKEN).await.status(), 200);
    let answer = eventually("the workspace's HELP answer to reach Twilio", || async {
        t.twilio.received().into_iter().find(|m| m.get("To") == Some(customer.as_str()))
    })
    .await;
    assert_eq!(answer.get("Body"), Some(help));
    assert_eq!(answer.get("From"), Some(number.as_str()));

    // The widget opens chats on the site it was connected for, and nowhere else.
    let start = |origin: &'static str| {
        t.http.post(t.url(&format!("/webchat/{key}/visitors"))).header("origin", origin).json(&json!({})).send()
    };
    assert_eq!(start("https://shop.globex.example").await.unwrap().status(), 201);
    assert_eq!(start("https://copycat.example").await.unwrap().status(), 403);

    // Disconnected: the number no longer takes messages for the workspace.
    let (s, b) = t.send_as("DELETE", &path, &token, None).await;
    assert_eq!(s, 200, "{b}");
    let (s, _) = t.send_as("DELETE", &path, &token, None).await;
    assert_eq!(s, 404, "a retry finds nothing to remove");
    let (s, audit) = t.send_as("GET", "/audit", &token, None).await;
    assert_eq!(s, 200);
    for action in ["workspace_settings_changed", "channel_connected", "channel_disconnected"] {
        assert!(audit.to_string().contains(action), "{action} audited: {audit}");
    }
}

/// Agents invited and disabled through the API, on the local stack's OpenID provider: the
/// invited person signs in and works; disabled, they can no longer sign in; a role change
/// applies from their next sign-in.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_admin_invites_an_agent_who_signs_in_until_disabled() {
    let t = spawn_stack().await;
    let issuer = issuer();
    let ws = t.workspace.to_string();
    let suffix = ulid::Ulid::new().to_string().to_lowercase();
    let admin = format!("ada-{suffix}");
    oidc::add_user(&issuer, &admin, &ws, &["admin"]).await.unwrap();
    let token = oidc::sign_in(&issuer, &admin).await.unwrap();

    let email = format!("ann-{suffix}@acme.example");
    let invite = json!({ "email": email, "name": "Ann", "role": "agent", "capacity": 300 });
    let (s, b) = t.send_as("POST", "/agents/invitations", &token, Some(invite.clone())).await;
    assert_eq!(s, 201, "{b}");
    let agent = b["agent"].as_str().unwrap().to_owned();
    let (s, again) = t.send_as("POST", "/agents/invitations", &token, Some(invite.clone())).await;
    assert_eq!((s, again["agent"].as_str()), (200, Some(agent.as_str())), "a retry invites nobody twice");
    // Another workspace cannot claim the same person.
    let other_admin = format!("oz-{suffix}");
    oidc::add_user(&issuer, &other_admin, &format!("ws-other-{suffix}"), &["admin"]).await.unwrap();
    let other = oidc::sign_in(&issuer, &other_admin).await.unwrap();
    let (s, b) = t.send_as("POST", "/agents/invitations", &other, Some(invite)).await;
    assert_eq!(s, 409, "{b}");

    // The invited agent signs in (their login is their address made safe) and works the inbox.
    let ann = oidc::sign_in(&issuer, &agent).await.unwrap();
    let (s, _) = t.send_as("GET", "/conversations", &ann, None).await;
    assert_eq!(s, 200);
    let (s, agents) = t.send_as("GET", "/agents", &token, None).await;
    assert_eq!(s, 200);
    assert!(agents["items"].as_array().unwrap().iter().any(|a| a["id"] == agent.as_str() && a["capacity"] == 300));

    // Promoted: the next sign-in carries the new role. Another workspace's admin finds nobody.
    let path = format!("/agents/{agent}/access");
    let (s, b) = t.send_as("PUT", &path, &other, Some(json!({ "enabled": false }))).await;
    assert_eq!(s, 404, "{b}");
    let (s, b) = t.send_as("PUT", &path, &token, Some(json!({ "role": "supervisor" }))).await;
    assert_eq!(s, 200, "{b}");
    let promoted = oidc::sign_in(&issuer, &agent).await.unwrap();
    let (s, _) = t.send_as("GET", "/analytics", &promoted, None).await;
    assert_eq!(s, 200, "supervisors read analytics");

    // Disabled: no new sign-in, and the audit trail says who did what.
    let (s, b) = t.send_as("PUT", &path, &token, Some(json!({ "enabled": false }))).await;
    assert_eq!(s, 200, "{b}");
    assert!(oidc::sign_in(&issuer, &agent).await.is_err(), "a disabled agent cannot sign in");
    let (s, audit) = t.send_as("GET", "/audit", &token, None).await;
    assert_eq!(s, 200);
    assert!(audit.to_string().contains("agent_invited") && audit.to_string().contains("agent_access_changed"));
}

/// The same directory port against Cognito's API (moto's user pool), as a deployed stack with its
/// own user pool uses it: invitations carry the workspace, ids are `sub`, and nothing crosses
/// workspaces although they share the pool.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cognito_directory_invites_promotes_and_disables_within_a_workspace() {
    use aws_sdk_cognitoidentityprovider::types::{AttributeDataType, SchemaAttributeType, UsernameAttributeType};
    use domain::ports::{AgentDirectory, DirectoryError, Invite};
    let aws = aws().await;
    let cognito = aws_sdk_cognitoidentityprovider::Client::new(&aws);
    let pool = cognito
        .create_user_pool()
        .pool_name(format!("agents-{}", ulid::Ulid::new()))
        .username_attributes(UsernameAttributeType::Email)
        .schema(
            SchemaAttributeType::builder()
                .name("workspace")
                .attribute_data_type(AttributeDataType::String)
                .mutable(true)
                .build(),
        )
        .send()
        .await
        .expect("moto's user pool")
        .user_pool
        .and_then(|p| p.id)
        .unwrap();
    for group in ["admin", "supervisor", "agent", "finance"] {
        cognito.create_group().user_pool_id(&pool).group_name(group).send().await.unwrap();
    }
    let dir = providers::cognito::CognitoDirectory::new(cognito.clone(), pool.clone());
    let (acme, globex) = (domain::WorkspaceId::parse("acme").unwrap(), domain::WorkspaceId::parse("globex").unwrap());
    let invite = Invite {
        email: domain::EmailAddress::parse("ann@acme.example").unwrap(),
        name: Some("Ann".into()),
        role: Role::Agent,
    };

    let first = dir.invite(&acme, &invite).await.unwrap();
    assert!(first.created);
    let again = dir.invite(&acme, &invite).await.unwrap();
    assert_eq!((again.agent.clone(), again.created), (first.agent.clone(), false), "the same sub, nothing new");
    assert!(matches!(dir.invite(&globex, &invite).await, Err(DirectoryError::Taken)));
    let user = cognito.admin_get_user().user_pool_id(&pool).username("ann@acme.example").send().await.unwrap();
    let attr =
        |n: &str| user.user_attributes().iter().find(|a| a.name() == n).and_then(|a| a.value()).map(str::to_owned);
    assert_eq!(attr("custom:workspace").as_deref(), Some("acme"));
    assert_eq!(attr("sub").as_deref(), Some(first.agent.as_str()));
    let groups = |pool: String| {
        let cognito = cognito.clone();
        async move {
            let out = cognito
                .admin_list_groups_for_user()
                .user_pool_id(pool)
                .username("ann@acme.example")
                .send()
                .await
                .unwrap();
            out.groups().iter().filter_map(|g| g.group_name().map(str::to_owned)).collect::<Vec<_>>()
        }
    };
    assert_eq!(groups(pool.clone()).await, ["agent"]);

    // Another workspace's admin finds nobody; this one's promotes and disables.
    assert!(!dir.set_role(&globex, &first.agent, Role::Admin).await.unwrap());
    assert!(!dir.set_enabled(&globex, &first.agent, false).await.unwrap());
    assert!(dir.set_role(&acme, &first.agent, Role::Supervisor).await.unwrap());
    assert_eq!(groups(pool.clone()).await, ["supervisor"]);
    assert!(dir.set_enabled(&acme, &first.agent, false).await.unwrap());
    let user = cognito.admin_get_user().user_pool_id(&pool).username("ann@acme.example").send().await.unwrap();
    assert!(!user.enabled(), "disabled in the pool");
}
