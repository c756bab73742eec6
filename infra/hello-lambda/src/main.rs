use lambda_runtime::{run, service_fn, Error, LambdaEvent};

#[tokio::main]
async fn main() -> Result<(), Error> {
    run(service_fn(|ev: LambdaEvent<serde_json::Value>| async move { Ok::<_, Error>(ev.payload) })).await
}
