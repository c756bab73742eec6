//! S3 behind the file store port.

use async_trait::async_trait;
use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use domain::ports::{FileRemover, FileStore, StoreError, Uploaded, Uploads};

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
        Ok(domain::objects::s3_url(&self.bucket, key))
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
impl FileRemover for S3Files {
    async fn delete_file(&self, url: &str) -> Result<(), StoreError> {
        let (bucket, key) =
            crate::parse_s3_url(url).ok_or_else(|| StoreError::Rejected(format!("not an s3:// URL: {url}").into()))?;
        // DeleteObject answers 204 for a key that is not there: deleting twice is fine.
        self.client.delete_object().bucket(bucket).key(key).send().await.map_err(classify)?;
        Ok(())
    }

    async fn delete_prefix(&self, prefix: &str) -> Result<usize, StoreError> {
        let mut deleted = 0;
        let mut token = None;
        loop {
            let page = self
                .client
                .list_objects_v2()
                .bucket(&self.bucket)
                .prefix(prefix)
                .set_continuation_token(token)
                .send()
                .await
                .map_err(classify)?;
            // LIST is billed as a PUT-class request.
            meter::record(domain::finance::Usage { s3_put_requests: 1, ..Default::default() });
            let keys: Vec<String> = page.contents().iter().filter_map(|o| o.key().map(str::to_owned)).collect();
            for key in &keys {
                self.client.delete_object().bucket(&self.bucket).key(key).send().await.map_err(classify)?;
                deleted += 1;
            }
            match page.next_continuation_token() {
                Some(t) if page.is_truncated() == Some(true) => token = Some(t.to_owned()),
                _ => return Ok(deleted),
            }
        }
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

    async fn download_url(&self, key: &str, ttl: time::Duration) -> Result<String, StoreError> {
        let expires = std::time::Duration::from_secs(ttl.whole_seconds().max(1) as u64);
        let config = aws_sdk_s3::presigning::PresigningConfig::expires_in(expires)
            .map_err(|e| StoreError::Rejected(Box::new(e)))?;
        let req = self.client.get_object().bucket(&self.bucket).key(key).presigned(config).await.map_err(classify)?;
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
            url: domain::objects::s3_url(&self.bucket, key),
            size: out.content_length().unwrap_or(0).max(0) as u64,
            content_type: out.content_type().unwrap_or("application/octet-stream").to_owned(),
        }))
    }
}

/// One part of a multipart upload: what a stream is buffered up to before it is sent (S3 wants
/// at least 5 MiB for every part but the last). A file that fits one part is a single PutObject.
pub const PART_BYTES: usize = 8 * 1024 * 1024;

impl S3Files {
    async fn abort(&self, key: &str, upload_id: &str) {
        let aborted =
            self.client.abort_multipart_upload().bucket(&self.bucket).key(key).upload_id(upload_id).send().await;
        meter::record(domain::finance::Usage { s3_put_requests: 1, ..Default::default() });
        if let Err(e) = aborted {
            // The bucket's lifecycle rule clears incomplete uploads; nothing is visible meanwhile.
            tracing::warn!(error = %DisplayErrorContext(e), "could not abort a multipart upload");
        }
    }

    async fn upload_part(
        &self,
        key: &str,
        upload_id: &str,
        number: i32,
        bytes: Vec<u8>,
    ) -> Result<aws_sdk_s3::types::CompletedPart, StoreError> {
        let out = self
            .client
            .upload_part()
            .bucket(&self.bucket)
            .key(key)
            .upload_id(upload_id)
            .part_number(number)
            .body(ByteStream::from(bytes))
            .send()
            .await
            .map_err(classify)?;
        meter::record(domain::finance::Usage { s3_put_requests: 1, ..Default::default() });
        Ok(aws_sdk_s3::types::CompletedPart::builder().set_e_tag(out.e_tag).part_number(number).build())
    }

    /// The stream, part by part, after the first part's worth was buffered.
    async fn multipart(
        &self,
        key: &str,
        content_type: &str,
        first: Vec<u8>,
        body: &mut dyn crate::sink::Chunks,
        cap: u64,
    ) -> Result<crate::sink::Put, StoreError> {
        let created = self
            .client
            .create_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .content_type(content_type)
            .send()
            .await
            .map_err(classify)?;
        meter::record(domain::finance::Usage { s3_put_requests: 1, ..Default::default() });
        let upload_id = created.upload_id.ok_or_else(|| StoreError::Corrupt("no upload id".into()))?;
        let result = self.parts(key, &upload_id, first, body, cap).await;
        match result {
            Ok(crate::sink::Put::Stored { url, size }) => Ok(crate::sink::Put::Stored { url, size }),
            other => {
                self.abort(key, &upload_id).await;
                other
            }
        }
    }

    async fn parts(
        &self,
        key: &str,
        upload_id: &str,
        first: Vec<u8>,
        body: &mut dyn crate::sink::Chunks,
        cap: u64,
    ) -> Result<crate::sink::Put, StoreError> {
        let mut size = first.len() as u64;
        let mut parts = vec![self.upload_part(key, upload_id, 1, first).await?];
        let mut buf = Vec::with_capacity(PART_BYTES);
        loop {
            let chunk = body.next_chunk().await?;
            if let Some(c) = &chunk {
                size += c.len() as u64;
                if size > cap {
                    return Ok(crate::sink::Put::TooLarge { seen: size });
                }
                buf.extend_from_slice(c);
            }
            if buf.len() >= PART_BYTES || (chunk.is_none() && !buf.is_empty()) {
                let number = parts.len() as i32 + 1;
                let part = std::mem::replace(&mut buf, Vec::with_capacity(PART_BYTES));
                parts.push(self.upload_part(key, upload_id, number, part).await?);
            }
            if chunk.is_none() {
                break;
            }
        }
        let done = aws_sdk_s3::types::CompletedMultipartUpload::builder().set_parts(Some(parts)).build();
        self.client
            .complete_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .upload_id(upload_id)
            .multipart_upload(done)
            .send()
            .await
            .map_err(classify)?;
        meter::record(domain::finance::Usage { s3_put_requests: 1, ..Default::default() });
        Ok(crate::sink::Put::Stored { url: domain::objects::s3_url(&self.bucket, key), size })
    }
}

#[async_trait]
impl crate::sink::ObjectSink for S3Files {
    async fn put_stream(
        &self,
        key: &str,
        content_type: &str,
        body: &mut dyn crate::sink::Chunks,
        cap: u64,
    ) -> Result<crate::sink::Put, StoreError> {
        let mut buf = Vec::new();
        while let Some(chunk) = body.next_chunk().await? {
            if (buf.len() + chunk.len()) as u64 > cap {
                return Ok(crate::sink::Put::TooLarge { seen: (buf.len() + chunk.len()) as u64 });
            }
            buf.extend_from_slice(&chunk);
            if buf.len() >= PART_BYTES {
                return self.multipart(key, content_type, buf, body, cap).await;
            }
        }
        let size = buf.len() as u64;
        let url = self.put_file(key, content_type, buf).await?;
        Ok(crate::sink::Put::Stored { url, size })
    }
}
