//! The REST API's OpenAPI 3.1 document, generated from the handlers' own annotations and types
//! (`#[utoipa::path]` on each route's function, `ToSchema` on the bodies they read and write).
//! `switchboard-local openapi` writes it; `docs/openapi.json` is the checked-in copy the
//! `openapi-document` function serves at `GET /openapi.json`, and the tests below fail when either
//! drifts from the code or from the routes in template.yaml.

use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::openapi::{RefOr, Response};
use utoipa::OpenApi;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Switchboard",
        description = "One inbox for SMS, WhatsApp, email, Messenger, Instagram, Telegram, web chat and voicemail. \
Agent routes take `Authorization: Bearer <ID token>` from the team's OpenID provider; the HTTP API's JWT \
authorizer refuses a missing, forged, foreign or expired token with 401 before any function runs. Errors are \
`{\"error\": {\"code\", \"message\"}}`.",
        license(name = "Apache-2.0", identifier = "Apache-2.0"),
    ),
    paths(
        api_add_identity::add,
        api_add_note::add,
        api_assign_conversation::assign,
        api_connect_channel::connect,
        api_contact_suggestions::suggest,
        api_create_canned::create,
        api_create_rate_card::create,
        api_create_upload::create,
        api_create_webhook::create,
        api_delete_canned::delete,
        api_delete_webhook::delete,
        api_disconnect_channel::disconnect,
        api_export_contact::export,
        api_erase_contact::erase,
        webchat_verify_page::handle,
        webchat_verify::handle,
        api_finance_reconcile::check,
        api_finance_report::report,
        api_get_analytics::analytics,
        api_get_attachment::link,
        api_get_contact::get,
        api_get_conversation::get,
        api_get_privacy_policy::get,
        api_get_routing_rules::get,
        api_get_sla_policy::get,
        api_get_workspace::get,
        api_invite_agent::invite,
        api_list_agents::list,
        api_list_audit::list,
        api_list_budgets::list,
        api_list_canned::list,
        api_list_channels::list,
        api_list_conversations::list,
        api_list_messages::list,
        api_list_notes::list,
        api_list_rate_cards::list,
        api_list_teams::list,
        api_list_webhook_deliveries::list,
        api_list_webhooks::list,
        api_list_whatsapp_templates::list,
        api_merge_contacts::merge,
        api_merge_conversation::merge,
        api_preview_canned::preview,
        api_preview_cost::preview,
        api_put_agent::put,
        api_put_budget::put,
        api_put_privacy_policy::put,
        api_put_routing_rules::put,
        api_put_sla_policy::put,
        api_put_team::put,
        api_put_whatsapp_template::put,
        api_resend_message::resend,
        api_submit_whatsapp_template::submit,
        api_put_workspace::put,
        api_redact_message::redact,
        api_redeliver_webhook::send_again,
        api_remove_identity::remove,
        api_rotate_webhook_secret::rotate,
        api_send_message::send,
        api_set_agent_access::set,
        api_set_consent::set,
        api_split_conversation::split,
        api_start_conversation::start,
        api_update_canned::update,
        api_update_conversation::update,
        api_update_webhook::update,
        contact_form::submit,
        csat_rate_page::handle,
        csat_rate::handle,
        meta_webhook::meta_handshake,
        meta_webhook::meta_events,
        openapi_document::handle,
        telegram_webhook::handle,
        twilio_sms_webhook::receive,
        twilio_status_webhook::receive,
        twilio_voice_webhook::voice_call,
        twilio_voice_webhook::voice_done,
        twilio_voice_webhook::voice_recording,
        twilio_voice_webhook::voice_transcription,
        webchat_session::start,
        whatsapp_webhook::whatsapp_handshake,
        whatsapp_webhook::whatsapp_events,
    ),
    // The sockets' frames, for typed clients (the console and the widget): what an agent's socket
    // pushes and accepts, and what a visitor's socket pushes.
    components(schemas(
        kit::http::ErrorBody,
        domain::realtime::Push,
        domain::realtime::ClientAction,
        domain::channels::webchat::VisitorFrame,
        domain::channels::webchat::VisitorMessage,
    )),
    modifiers(&Conventions),
)]
struct Document;

/// What every route shares, added once instead of on each: the bearer scheme on agent routes and
/// the errors any of them can answer.
struct Conventions;

const PUBLIC: [&str; 4] = ["/webhooks/", "/webchat/", "/csat/", "/openapi.json"];

impl utoipa::Modify for Conventions {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "oidc",
            SecurityScheme::Http(
                Http::builder()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some("The ID token of the team's OpenID Connect provider (Cognito, Okta, Entra ID…)"))
                    .build(),
            ),
        );
        let error = |what: &str| -> RefOr<Response> {
            utoipa::openapi::ResponseBuilder::new()
                .description(what)
                .content(
                    "application/json",
                    utoipa::openapi::ContentBuilder::new()
                        .schema(Some(utoipa::openapi::Ref::from_schema_name("ErrorBody")))
                        .build(),
                )
                .build()
                .into()
        };
        let defaults = |code: &str| match code {
            "400" => "The request is malformed (the message says how)",
            "401" => "No valid sign-in: the authorizer answers `{\"message\": \"Unauthorized\"}`",
            "403" => "The caller's role may not do this",
            "404" => "Nothing of this workspace has that id",
            "409" => "It conflicts with what is stored (the message says what)",
            "422" => "Understood, but refused by a rule (the message says which)",
            "429" => "Too many requests: try again later",
            "503" => "A dependency is briefly unavailable: retry",
            "200" => "OK",
            "201" => "Created",
            "202" => "Accepted: queued",
            "204" => "Done, nothing to answer",
            _ => "Internal error",
        };
        for (path, item) in doc.paths.paths.iter_mut() {
            let public = PUBLIC.iter().any(|p| path.starts_with(p));
            for op in operations(item) {
                let mut codes = vec!["400", "500", "503"];
                if !public {
                    codes.extend(["401", "403"]);
                    op.security = Some(vec![utoipa::openapi::security::SecurityRequirement::new::<
                        &str,
                        [&str; 0],
                        &str,
                    >("oidc", [])]);
                }
                for (code, r) in op.responses.responses.iter_mut() {
                    // A route's own error lines name only the status: the shared description fills in.
                    if let RefOr::T(resp) = r {
                        if resp.description.is_empty() {
                            resp.description = defaults(code).to_owned();
                        }
                    }
                }
                for code in codes {
                    op.responses.responses.entry(code.to_owned()).or_insert_with(|| error(defaults(code)));
                }
            }
        }
    }
}

fn operations(item: &mut utoipa::openapi::PathItem) -> impl Iterator<Item = &mut utoipa::openapi::path::Operation> {
    [
        item.get.as_mut(),
        item.put.as_mut(),
        item.post.as_mut(),
        item.delete.as_mut(),
        item.patch.as_mut(),
        item.head.as_mut(),
        item.options.as_mut(),
    ]
    .into_iter()
    .flatten()
}

/// The document as served: pretty JSON with a final newline.
pub fn document() -> String {
    let mut text = Document::openapi().to_pretty_json().expect("the document serialises");
    text.push('\n');
    text
}

/// Every `METHOD /path` the document describes.
pub fn operations_of(doc: &serde_json::Value) -> std::collections::BTreeSet<String> {
    let mut out = std::collections::BTreeSet::new();
    for (path, item) in doc["paths"].as_object().into_iter().flatten() {
        for method in item.as_object().into_iter().flatten().map(|(m, _)| m) {
            if ["get", "put", "post", "delete", "patch", "head", "options"].contains(&method.as_str()) {
                out.insert(format!("{} {path}", method.to_uppercase()));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root() -> std::path::PathBuf {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
    }

    #[test]
    fn the_document_describes_exactly_the_routes_in_the_template() {
        let template = crate::template::Template::load(&root().join("template.yaml")).unwrap();
        let routes: std::collections::BTreeSet<String> =
            template.http_routes().iter().map(|r| format!("{} {}", r.method, r.path)).collect();
        let doc: serde_json::Value = serde_json::from_str(&document()).unwrap();
        let described = operations_of(&doc);
        let missing: Vec<_> = routes.difference(&described).collect();
        let extra: Vec<_> = described.difference(&routes).collect();
        assert!(missing.is_empty() && extra.is_empty(), "not described: {missing:#?}\nnot routed: {extra:#?}");
    }

    #[test]
    fn the_checked_in_document_is_the_generated_one() {
        let path = root().join("docs/openapi.json");
        let checked_in = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            checked_in == document(),
            "docs/openapi.json is stale: run `cargo run -p switchboard-local -- openapi > docs/openapi.json`"
        );
    }

    #[test]
    fn every_operation_answers_something_and_documents_its_errors() {
        let doc: serde_json::Value = serde_json::from_str(&document()).unwrap();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().unwrap() {
                let codes: Vec<&String> = op["responses"].as_object().unwrap().keys().collect();
                assert!(codes.iter().any(|c| c.starts_with('2') || c.starts_with('3')), "{method} {path}: {codes:?}");
                assert!(codes.iter().any(|c| *c == "400") && codes.iter().any(|c| *c == "503"), "{method} {path}");
                assert!(op.get("operationId").is_some(), "{method} {path}");
            }
        }
    }

    /// A well-kept validator (openapi-spec-validator, installed by infra/scripts/install.sh)
    /// checks the checked-in document against the OpenAPI 3.1 schema.
    #[test]
    fn the_document_is_valid_openapi_3_1() {
        let validator = root().join(".local/venv/bin/openapi-spec-validator");
        assert!(validator.exists(), "run infra/scripts/install.sh (it installs openapi-spec-validator)");
        let out = std::process::Command::new(&validator).arg(root().join("docs/openapi.json")).output().unwrap();
        assert!(
            out.status.success(),
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let doc: serde_json::Value = serde_json::from_str(&document()).unwrap();
        assert_eq!(doc["openapi"], "3.1.0");
    }
}
