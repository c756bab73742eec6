//! S3 behind the file store port.

use async_trait::async_trait;
use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use domain::ports::{FileStore, StoreError, Uploaded, Uploads};

pub struct S3Files {
    client: aws_sdk_s3::Client,
    bucket: String,
}

impl S3Files {
    pub fn new(client: aws_sdk_s3::Client, bucket: impl Into<String>) -> Self {
        Self { client, bucket: bucket.into() }
    }
    pub fn bucket(&self) -> &str {
        &self.bucket
    }
}

fn classify<E, R>(e: SdkError<E, R>) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    let retryable = match &e {
        SdkError::ServiceError(s) => {
            matches!(s.err().code(), Some("SlowDown" | "InternalError" | "ServiceUnavailable" | "RequestTimeout"))
        }
        _ => true,
    };
    let boxed = DisplayErrorContext(e).to_string().into();
    if retryable {
        StoreError::Unavailable(boxed)
    } else {
        StoreError::Rejected(boxed)
    }
}

#[async_trait]
impl FileStore for S3Files {
    async fn put_file(&self, key: &str, content_type: &str, bytes: Vec<u8>) -> Result<String, StoreError> {
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type(content_type)
            .body(ByteStream::from(bytes))
            .send()
            .await
            .map_err(classify)?;
        meter::record(domain::finance::Usage { s3_put_requests: 1, ..Default::default() });
        Ok(format!("s3://{}/{key}", self.bucket))
    }

    async fn get_file(&self, url: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let (bucket, key) =
            crate::parse_s3_url(url).ok_or_else(|| StoreError::Rejected(format!("not an s3:// URL: {url}").into()))?;
        meter::record(domain::finance::Usage { s3_get_requests: 1, ..Default::default() });
        let out = match self.client.get_object().bucket(bucket).key(key).send().await {
            Ok(out) => out,
            Err(SdkError::ServiceError(s)) if s.err().is_no_such_key() => return Ok(None),
            Err(e) => return Err(classify(e)),
        };
        let bytes = out.body.collect().await.map_err(|e| StoreError::Unavailable(Box::new(e)))?;
        Ok(Some(bytes.into_bytes().to_vec()))
    }
}

#[async_trait]
impl Uploads for S3Files {
    async fn upload_url(
        &self,
        key: &str,
        content_type: &str,
        size: u64,
        ttl: time::Duration,
    ) -> Result<String, StoreError> {
        let expires = std::time::Duration::from_secs(ttl.whole_seconds().max(1) as u64);
        let config = aws_sdk_s3::presigning::PresigningConfig::expires_in(expires)
            .map_err(|e| StoreError::Rejected(Box::new(e)))?;
        // Content type and length are signed: the browser must send exactly these.
        let req = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type(content_type)
            .content_length(size as i64)
            .presigned(config)
            .await
            .map_err(classify)?;
        Ok(req.uri().to_owned())
    }

    async fn uploaded(&self, key: &str) -> Result<Option<Uploaded>, StoreError> {
        meter::record(domain::finance::Usage { s3_get_requests: 1, ..Default::default() });
        let out = match self.client.head_object().bucket(&self.bucket).key(key).send().await {
            Ok(out) => out,
            Err(SdkError::ServiceError(s)) if s.err().is_not_found() => return Ok(None),
            Err(e) => return Err(classify(e)),
        };
        Ok(Some(Uploaded {
            url: format!("s3://{}/{key}", self.bucket),
            size: out.content_length().unwrap_or(0).max(0) as u64,
            content_type: out.content_type().unwrap_or("application/octet-stream").to_owned(),
        }))
    }
}
