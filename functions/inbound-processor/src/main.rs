use aws_lambda_events::sqs::SqsEvent;
use lambda_runtime::{run, service_fn, Error, LambdaEvent};

#[tokio::main]
async fn main() -> Result<(), Error> {
    kit::telemetry::init();
    let config = kit::Config::from_env();
    let aws = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let deps = inbound_processor::Deps::from_config(&config, &aws).await?;
    run(service_fn(|ev: LambdaEvent<SqsEvent>| kit::telemetry::flushed(inbound_processor::handle(&deps, ev.payload))))
        .await
}
