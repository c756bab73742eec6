//! SES v2 behind the email transport port: a raw MIME message, sent as built.

use async_trait::async_trait;
use aws_sdk_sesv2::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_sesv2::primitives::Blob;
use aws_sdk_sesv2::types::{Destination, EmailContent, RawMessage};
use domain::channels::SendOutcome;
use domain::ports::{EmailTransport, TransportError};

pub struct SesTransport {
    client: aws_sdk_sesv2::Client,
    /// The configuration set whose event destination reports bounces and complaints.
    configuration_set: Option<String>,
}

impl SesTransport {
    pub fn new(client: aws_sdk_sesv2::Client, configuration_set: Option<String>) -> Self {
        Self { client, configuration_set }
    }
}

/// SES's throttling and server-side errors are worth retrying; anything else (an unverified
/// sender, a rejected message, a suspended account) is SES refusing the message.
const RETRYABLE: [&str; 4] =
    ["TooManyRequestsException", "LimitExceededException", "InternalFailure", "ServiceUnavailable"];

#[async_trait]
impl EmailTransport for SesTransport {
    async fn send_raw(&self, from: &str, to: &str, raw: Vec<u8>) -> Result<SendOutcome, TransportError> {
        let content = EmailContent::builder()
            .raw(
                RawMessage::builder()
                    .data(Blob::new(raw))
                    .build()
                    .map_err(|e| TransportError::NotSent(e.to_string()))?,
            )
            .build();
        let sent = self
            .client
            .send_email()
            .from_email_address(from)
            .destination(Destination::builder().to_addresses(to).build())
            .content(content)
            .set_configuration_set_name(self.configuration_set.clone())
            .send()
            .await;
        match sent {
            Ok(out) => match out.message_id {
                Some(id) => Ok(SendOutcome::Accepted { provider_message_id: id }),
                None => Err(TransportError::Ambiguous("SES accepted the message without an id".into())),
            },
            Err(SdkError::ServiceError(s)) => {
                let status = s.raw().status().as_u16();
                let code = s.err().code().unwrap_or("SESError").to_owned();
                let message = s.err().message().unwrap_or_default().to_owned();
                if status >= 500 || RETRYABLE.contains(&code.as_str()) {
                    Ok(SendOutcome::Retryable { http_status: status, detail: format!("{code}: {message}") })
                } else {
                    Ok(SendOutcome::Rejected { code, message })
                }
            }
            Err(e @ SdkError::ConstructionFailure(_)) => {
                Err(TransportError::NotSent(DisplayErrorContext(e).to_string()))
            }
            Err(e @ SdkError::DispatchFailure(_)) => {
                let connect = matches!(&e, SdkError::DispatchFailure(d) if d.is_io() || d.is_timeout());
                let text = DisplayErrorContext(e).to_string();
                if connect {
                    Err(TransportError::NotSent(text))
                } else {
                    Err(TransportError::Ambiguous(text))
                }
            }
            Err(e) => Err(TransportError::Ambiguous(DisplayErrorContext(e).to_string())),
        }
    }
}
