use lambda_runtime::{run, service_fn, Error, LambdaEvent};

#[tokio::main]
async fn main() -> Result<(), Error> {
    kit::telemetry::init();
    let config = kit::Config::from_env();
    let aws = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let deps = migrate_table::Deps::from_config(&config, &aws).await?;
    run(service_fn(|ev: LambdaEvent<serde_json::Value>| migrate_table::handle(&deps, ev.payload))).await
}
