//! The wiring every authenticated read-or-admin API route shares, built once at cold start: the
//! single-table store, the JWT check, and the rate-card cache (for routes that show money). Each
//! route is still its own function; only this wiring is common.

use std::sync::Arc;

use domain::finance::service::RateCardCache;
use kit::auth::Authenticator;
use store::Store;

pub struct Deps {
    pub store: Arc<dyn Store>,
    pub auth: Authenticator,
    pub rates: RateCardCache,
}

impl Deps {
    pub fn new(store: Arc<dyn Store>, auth: Authenticator) -> Self {
        Self { store, auth, rates: RateCardCache::default() }
    }

    /// `TABLE_NAME`, and `JWT_SECRET` (or `JWT_SECRET_SECRET_ARN` in AWS).
    pub async fn from_config(config: &kit::Config, aws: &aws_config::SdkConfig) -> Result<Self, kit::ConfigError> {
        Ok(Self::new(
            Arc::new(store::DynamoStore::new(aws_sdk_dynamodb::Client::new(aws), config.required("TABLE_NAME")?)),
            Authenticator::from_config(config, aws).await?,
        ))
    }
}
