//! Files in S3 and email through SES v2, behind the domain's `FileStore` and `EmailTransport`
//! ports; `memory` has the file store unit tests use (end-to-end tests use moto's S3 and SES).

pub mod memory;
#[cfg(feature = "s3")]
pub mod s3;
#[cfg(feature = "ses")]
pub mod ses;

/// Splits `s3://bucket/key`.
pub fn parse_s3_url(url: &str) -> Option<(&str, &str)> {
    let rest = url.strip_prefix("s3://")?;
    let (bucket, key) = rest.split_once('/')?;
    (!bucket.is_empty() && !key.is_empty()).then_some((bucket, key))
}

#[cfg(test)]
mod tests {
    #[test]
    fn s3_urls_split_into_bucket_and_key() {
        assert_eq!(super::parse_s3_url("s3://b/k/x.pdf"), Some(("b", "k/x.pdf")));
        assert_eq!(super::parse_s3_url("https://b/k"), None);
        assert_eq!(super::parse_s3_url("s3://b/"), None);
    }
}
