//! API Gateway's `@connections` management API behind [`ConnectionPusher`]: the agents' socket
//! API (the notifier) and the web chat visitors' one (the notifier and the sender) each get one.

use async_trait::async_trait;
use aws_sdk_apigatewaymanagement::operation::post_to_connection::PostToConnectionError;
use aws_sdk_apigatewaymanagement::primitives::Blob;
use domain::ports::{ConnectionPusher, PushError};
use domain::ConnectionId;

pub struct ApiGatewayPusher {
    client: aws_sdk_apigatewaymanagement::Client,
}

impl ApiGatewayPusher {
    /// `endpoint`: `https://{api-id}.execute-api.{region}.amazonaws.com/{stage}` (the local gateway
    /// locally).
    pub fn new(aws: &aws_config::SdkConfig, endpoint: &str) -> Self {
        let conf = aws_sdk_apigatewaymanagement::config::Builder::from(aws).endpoint_url(endpoint).build();
        Self { client: aws_sdk_apigatewaymanagement::Client::from_conf(conf) }
    }
}

#[async_trait]
impl ConnectionPusher for ApiGatewayPusher {
    async fn push(&self, id: &ConnectionId, frame: &[u8]) -> Result<(), PushError> {
        match self.client.post_to_connection().connection_id(id.as_str()).data(Blob::new(frame)).send().await {
            Ok(_) => Ok(()),
            Err(e) => match e.as_service_error() {
                Some(PostToConnectionError::GoneException(_)) => Err(PushError::Gone),
                _ => Err(PushError::Failed(Box::new(e))),
            },
        }
    }

    async fn close(&self, id: &ConnectionId) -> Result<(), PushError> {
        use aws_sdk_apigatewaymanagement::operation::delete_connection::DeleteConnectionError;
        match self.client.delete_connection().connection_id(id.as_str()).send().await {
            Ok(_) => Ok(()),
            Err(e) => match e.as_service_error() {
                Some(DeleteConnectionError::GoneException(_)) => Ok(()),
                _ => Err(PushError::Failed(Box::new(e))),
            },
        }
    }
}
