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

/// With the inbound processor's settings cache on: the whole contract still holds (what a store
/// writes it reads back at once), another container's change is seen once the TTL has passed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_that_remembers_settings_meets_the_contract_and_sees_others_changes_after_its_ttl() {
    use domain::ports::RoutingStore;
    use std::time::Duration;
    let aws = aws().await;
    let template = Template::load(&repo_root().join("template.yaml")).unwrap();
    let client = aws_sdk_dynamodb::Client::new(&aws);
    let table = create_table(&template, &format!("settings{}", ulid::Ulid::new().to_string().to_lowercase()), &client)
        .await
        .unwrap();
    let ttl = Duration::from_secs(2);
    let cached = store::DynamoStore::new(client.clone(), table.clone()).with_settings_cache(ttl);
    store::contract::run_all(&cached).await;

    let other = store::DynamoStore::new(client, table);
    let ws = domain::WorkspaceId::parse("settings-cache").unwrap();
    assert_eq!(cached.routing_rules(&ws).await.unwrap().default_capacity, 500);
    assert!(cached.teams(&ws).await.unwrap().is_empty());
    // Another container changes them: this one answers from memory until the TTL passes.
    let rules = domain::routing::RoutingRules { default_capacity: 300, ..Default::default() };
    other.put_routing_rules(&ws, &rules).await.unwrap();
    let team =
        domain::routing::Team { id: domain::TeamId::parse("billing").unwrap(), name: "Billing".into(), hours: None };
    other.put_team(&ws, &team).await.unwrap();
    assert_eq!(cached.routing_rules(&ws).await.unwrap().default_capacity, 500);
    assert!(cached.teams(&ws).await.unwrap().is_empty());
    tokio::time::sleep(ttl).await;
    assert_eq!(cached.routing_rules(&ws).await.unwrap().default_capacity, 300);
    assert_eq!(cached.teams(&ws).await.unwrap(), vec![team]);
    // Its own change it sees at once.
    let rules = domain::routing::RoutingRules { default_capacity: 700, ..Default::default() };
    cached.put_routing_rules(&ws, &rules).await.unwrap();
    assert_eq!(cached.routing_rules(&ws).await.unwrap().default_capacity, 700);
}
