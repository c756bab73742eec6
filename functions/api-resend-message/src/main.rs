use lambda_http::{run, service_fn, Error};

#[tokio::main]
async fn main() -> Result<(), Error> {
    kit::telemetry::init();
    let config = kit::Config::from_env();
    let aws = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let deps = api_resend_message::Deps::from_config(&config, &aws).await?;
    run(service_fn(|req| api_resend_message::handle(&deps, req))).await
}
