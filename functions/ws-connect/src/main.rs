use kit::ws::WsRequest;
use lambda_runtime::{run, service_fn, Error, LambdaEvent};

#[tokio::main]
async fn main() -> Result<(), Error> {
    kit::telemetry::init();
    let config = kit::Config::from_env();
    let aws = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let deps = ws_connect::Deps::from_config(&config, &aws).await?;
    run(service_fn(|ev: LambdaEvent<WsRequest>| async { Ok::<_, Error>(ws_connect::handle(&deps, ev.payload).await) }))
        .await
}
