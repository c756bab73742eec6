//! In-memory file store and email transport.

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;
use domain::channels::SendOutcome;
use domain::ports::{EmailTransport, FileStore, StoreError, TransportError};

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

/// Records what it sends; answers with `outcome` (accepted with a counter id by default).
#[derive(Default)]
pub struct MemoryTransport {
    pub sent: Mutex<Vec<(String, String, Vec<u8>)>>,
    pub outcome: Mutex<Option<SendOutcome>>,
}

#[async_trait]
impl EmailTransport for MemoryTransport {
    async fn send_raw(&self, from: &str, to: &str, raw: Vec<u8>) -> Result<SendOutcome, TransportError> {
        let mut sent = self.sent.lock().expect("sent lock");
        sent.push((from.to_owned(), to.to_owned(), raw));
        Ok(self
            .outcome
            .lock()
            .expect("outcome lock")
            .clone()
            .unwrap_or(SendOutcome::Accepted { provider_message_id: format!("mem-{}", sent.len()) }))
    }
}
