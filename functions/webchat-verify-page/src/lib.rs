//! GET /webchat/verify/{token} — the page a web chat visitor's email proof link opens: one button
//! that proves the address (`POST` to the same path). Opening the link proves nothing: mail
//! scanners open every link of a message. A forged or altered link is 400, an expired one 410,
//! both as a small page; nothing the visitor typed is shown.

use domain::channels::webchat;
use lambda_http::{Body, Error, Request, RequestExt, Response};
use time::OffsetDateTime;

pub struct Deps {
    /// The key proof links are signed with; `None` where links are not configured.
    pub key: Option<Vec<u8>>,
}

impl Deps {
    /// `LINK_SIGNING_SECRET`.
    pub async fn from_config(config: &kit::Config, aws: &aws_config::SdkConfig) -> Result<Self, kit::ConfigError> {
        let auth = kit::auth::Authenticator::from_config(config, aws).await?;
        Ok(Self { key: auth.link_key().ok().map(webchat::proof_key) })
    }
}

#[utoipa::path(get, path = "/webchat/verify/{token}", operation_id = "webchatVerifyPage", tag = "public",
    params(("token" = String, Path, description = "The signed proof link")),
    responses((status = 200, description = "The confirm page (proves nothing yet)", body = String, content_type = "text/html"),
              (status = 400, description = "A forged or altered link", body = String, content_type = "text/html"),
              (status = 410, description = "The link expired", body = String, content_type = "text/html")))]
pub async fn handle(deps: &Deps, req: Request) -> Result<Response<Body>, Error> {
    let token = req.path_parameters().first("token").unwrap_or_default().to_owned();
    Ok(match api::csat::proof_from_link(deps.key.as_deref(), &token, OffsetDateTime::now_utc()) {
        Ok(_) => api::csat::proof_page(&token),
        Err(page) => *page,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use domain::channels::webchat::{EmailProof, VisitorId};
    use domain::{EmailAddress, WorkspaceId};

    fn get(token: &str) -> Request {
        kit::apigw::test_request(
            "GET",
            "/webchat/verify/{token}",
            &format!("/webchat/verify/{token}"),
            &[("token", token)],
            &[],
            None,
        )
    }

    #[tokio::test]
    async fn the_page_asks_before_proving_and_refuses_forged_or_expired_links() {
        let key = webchat::proof_key(b"k");
        let deps = Deps { key: Some(key.clone()) };
        let proof = EmailProof {
            workspace: WorkspaceId::parse("acme").unwrap(),
            visitor: VisitorId::new(),
            email: EmailAddress::parse("rui@example.com").unwrap(),
        };
        let now = OffsetDateTime::now_utc();
        let token = webchat::proof_token(&key, &proof, now + webchat::PROOF_LINK_TTL);
        let res = handle(&deps, get(&token)).await.unwrap();
        assert_eq!(res.status(), 200);
        let Body::Text(page) = res.body() else { panic!("html") };
        assert!(page.contains("method=\"post\"") && !page.contains("rui@example.com"), "{page}");
        assert_eq!(handle(&deps, get(&format!("{token}x"))).await.unwrap().status(), 400);
        let old = webchat::proof_token(&key, &proof, now - time::Duration::minutes(1));
        assert_eq!(handle(&deps, get(&old)).await.unwrap().status(), 410);
        assert_eq!(handle(&Deps { key: None }, get(&token)).await.unwrap().status(), 503);
    }
}
