//! The media bucket as deployed (moto's S3): a provider's file streamed in part by part, with the
//! size cap, through the same S3 adapter the webhooks use.

use domain::ports::FileStore;
use providers::s3::{S3Files, PART_BYTES};
use providers::sink::{InMemory, ObjectSink, Put};
use switchboard_e2e::aws;

async fn bucket() -> S3Files {
    let aws = aws().await;
    let s3 = aws_sdk_s3::Client::new(&aws);
    let name = format!("media-{}", ulid::Ulid::new().to_string().to_lowercase());
    s3.create_bucket().bucket(&name).send().await.expect("bucket");
    S3Files::new(s3, name)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_file_streams_in_parts_and_one_over_the_cap_leaves_nothing() {
    let files = bucket().await;
    // Two and a half parts, arriving in 64 KB chunks as a download does.
    let size = PART_BYTES * 5 / 2;
    let data: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
    let mut body = InMemory::new(data.clone(), 64 * 1024);
    let put = files.put_stream("media/acme/whatsapp/video1", "video/mp4", &mut body, 100 << 20).await.unwrap();
    let Put::Stored { url, size: stored } = put else { panic!("{put:?}") };
    assert_eq!(stored, size as u64);
    assert_eq!(files.get_file(&url).await.unwrap().expect("the object"), data, "the parts join in order");

    // Over the cap after the first part went up: the multipart upload is aborted, no object.
    let mut body = InMemory::new(data.clone(), 64 * 1024);
    let put = files.put_stream("media/acme/whatsapp/video2", "video/mp4", &mut body, (PART_BYTES + 1) as u64).await;
    assert!(matches!(put, Ok(Put::TooLarge { .. })), "{put:?}");
    let gone = format!("s3://{}/media/acme/whatsapp/video2", files.bucket());
    assert!(files.get_file(&gone).await.unwrap().is_none());

    // A small file is one PutObject.
    let mut body = InMemory::new(&b"JFIF"[..], 1);
    let put = files.put_stream("media/acme/meta/p1", "image/jpeg", &mut body, 1024).await.unwrap();
    assert!(matches!(put, Put::Stored { size: 4, .. }));
}
