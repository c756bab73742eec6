//! An in-memory file store for handler tests.

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;
use domain::ports::{FileRemover, FileStore, StoreError, Uploaded, Uploads};

#[derive(Default)]
pub struct MemoryFiles {
    files: Mutex<HashMap<String, (String, Vec<u8>)>>,
}

impl MemoryFiles {
    /// (content type, bytes) of a stored URL.
    pub fn file(&self, url: &str) -> Option<(String, Vec<u8>)> {
        self.files.lock().expect("files lock").get(url).cloned()
    }
}

#[async_trait]
impl FileStore for MemoryFiles {
    async fn put_file(&self, key: &str, content_type: &str, bytes: Vec<u8>) -> Result<String, StoreError> {
        let url = format!("s3://memory/{key}");
        self.files.lock().expect("files lock").insert(url.clone(), (content_type.to_owned(), bytes));
        Ok(url)
    }
    async fn get_file(&self, url: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.files.lock().expect("files lock").get(url).map(|(_, b)| b.clone()))
    }
}

#[async_trait]
impl FileRemover for MemoryFiles {
    async fn delete_file(&self, url: &str) -> Result<(), StoreError> {
        self.files.lock().expect("files lock").remove(url);
        Ok(())
    }
    async fn delete_prefix(&self, prefix: &str) -> Result<usize, StoreError> {
        let start = format!("s3://memory/{prefix}");
        let mut files = self.files.lock().expect("files lock");
        let before = files.len();
        files.retain(|url, _| !url.starts_with(&start));
        Ok(before - files.len())
    }
}

impl MemoryFiles {
    /// Every stored URL (tests check what is left).
    pub fn urls(&self) -> Vec<String> {
        let mut urls: Vec<String> = self.files.lock().expect("files lock").keys().cloned().collect();
        urls.sort();
        urls
    }
}

/// Uploads for handler tests: the "URL" names the key; [`MemoryFiles::put_file`] plays the browser.
#[async_trait]
impl Uploads for MemoryFiles {
    async fn upload_url(&self, key: &str, _: &str, size: u64, _: time::Duration) -> Result<String, StoreError> {
        Ok(format!("memory://upload/{key}?size={size}"))
    }
    async fn uploaded(&self, key: &str) -> Result<Option<Uploaded>, StoreError> {
        let url = format!("s3://memory/{key}");
        Ok(self.file(&url).map(|(content_type, bytes)| Uploaded { url, size: bytes.len() as u64, content_type }))
    }
    async fn download_url(&self, key: &str, _: time::Duration) -> Result<String, StoreError> {
        Ok(format!("memory://download/{key}"))
    }
}

/// The sink twin of S3's: the stream is collected, up to the cap.
#[async_trait]
impl crate::sink::ObjectSink for MemoryFiles {
    async fn put_stream(
        &self,
        key: &str,
        content_type: &str,
        body: &mut dyn crate::sink::Chunks,
        cap: u64,
    ) -> Result<crate::sink::Put, StoreError> {
        let mut bytes = Vec::new();
        while let Some(chunk) = body.next_chunk().await? {
            bytes.extend_from_slice(&chunk);
            if bytes.len() as u64 > cap {
                return Ok(crate::sink::Put::TooLarge { seen: bytes.len() as u64 });
            }
        }
        let size = bytes.len() as u64;
        let url = self.put_file(key, content_type, bytes).await?;
        Ok(crate::sink::Put::Stored { url, size })
    }
}

/// An in-memory credential vault for handler tests (end-to-end tests use moto's Secrets Manager).
#[derive(Default)]
pub struct MemoryVault {
    secrets: Mutex<HashMap<domain::credentials::CredentialKey, (domain::WorkspaceId, String)>>,
}

impl MemoryVault {
    /// The workspace a secret was stored for.
    pub fn owner(&self, key: &domain::credentials::CredentialKey) -> Option<domain::WorkspaceId> {
        self.secrets.lock().expect("vault lock").get(key).map(|(ws, _)| ws.clone())
    }
}

#[async_trait]
impl domain::ports::CredentialVault for MemoryVault {
    async fn get(&self, key: &domain::credentials::CredentialKey) -> Result<Option<String>, domain::ports::VaultError> {
        Ok(self.secrets.lock().expect("vault lock").get(key).map(|(_, v)| v.clone()))
    }
    async fn put(
        &self,
        key: &domain::credentials::CredentialKey,
        workspace: &domain::WorkspaceId,
        value: &str,
    ) -> Result<(), domain::ports::VaultError> {
        self.secrets.lock().expect("vault lock").insert(key.clone(), (workspace.clone(), value.to_owned()));
        Ok(())
    }
    async fn delete(&self, key: &domain::credentials::CredentialKey) -> Result<(), domain::ports::VaultError> {
        self.secrets.lock().expect("vault lock").remove(key);
        Ok(())
    }
}
