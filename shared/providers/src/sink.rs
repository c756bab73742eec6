//! Where a stream of bytes is stored, with a size cap: a provider's file is copied chunk by chunk,
//! so a 100 MB video needs one part's worth of memory, not the whole file (or twice it).

use async_trait::async_trait;
use bytes::Bytes;
use domain::ports::StoreError;

/// A body read chunk by chunk (an HTTP response, a test's buffer).
#[async_trait]
pub trait Chunks: Send {
    /// The next chunk; `None` at the end.
    async fn next_chunk(&mut self) -> Result<Option<Bytes>, StoreError>;
}

/// What storing a stream came to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Put {
    /// Stored whole: the object's `s3://` URL and its size.
    Stored { url: String, size: u64 },
    /// The stream went past the cap: nothing is left behind (a multipart upload is aborted).
    TooLarge { seen: u64 },
}

#[async_trait]
pub trait ObjectSink: Send + Sync {
    /// Stores `body` under `key`, at most `cap` bytes of it.
    async fn put_stream(
        &self,
        key: &str,
        content_type: &str,
        body: &mut dyn Chunks,
        cap: u64,
    ) -> Result<Put, StoreError>;
}

/// A body already in memory, in chunks of the given size (tests, small files).
pub struct InMemory {
    data: Bytes,
    chunk: usize,
}

impl InMemory {
    pub fn new(data: impl Into<Bytes>, chunk: usize) -> Self {
        Self { data: data.into(), chunk: chunk.max(1) }
    }
}

#[async_trait]
impl Chunks for InMemory {
    async fn next_chunk(&mut self) -> Result<Option<Bytes>, StoreError> {
        if self.data.is_empty() {
            return Ok(None);
        }
        let n = self.chunk.min(self.data.len());
        Ok(Some(self.data.split_to(n)))
    }
}
