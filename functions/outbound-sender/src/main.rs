use aws_lambda_events::sqs::SqsEvent;
use lambda_runtime::{run, service_fn, Error, LambdaEvent};

#[tokio::main]
async fn main() -> Result<(), Error> {
    kit::telemetry::init();
    let config = kit::Config::from_env();
    let aws = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let deps = outbound_sender::Deps::from_config(&config, &aws).await?;
    run(service_fn(|ev: LambdaEvent<SqsEvent>| kit::telemetry::flushed(outbound_sender::handle(&deps, ev.payload))))
        .await
}
