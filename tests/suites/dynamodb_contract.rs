//! The store contract, on DynamoDB Local: the same suite the in-memory fake passes.

use switchboard_e2e::aws;
use switchboard_local::provision::create_table;
use switchboard_local::services::repo_root;
use switchboard_local::template::Template;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dynamodb_meets_the_store_contract() {
    let aws = aws().await;
    let template = Template::load(&repo_root().join("template.yaml")).unwrap();
    let client = aws_sdk_dynamodb::Client::new(&aws);
    let table = create_table(&template, &format!("contract{}", ulid::Ulid::new().to_string().to_lowercase()), &client)
        .await
        .unwrap();
    store::contract::run_all(&store::DynamoStore::new(client, table)).await;
}
