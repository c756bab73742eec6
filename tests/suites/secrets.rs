//! Secrets as deployed: the template hands functions `<NAME>_SECRET_ARN`, and the kit reads the value
//! from Secrets Manager at cold start (here moto's, through AWS_ENDPOINT_URL_SECRETS_MANAGER).

use switchboard_e2e::aws;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secret_arn_is_resolved_through_secrets_manager() {
    let aws = aws().await;
    let sm = aws_sdk_secretsmanager::Client::new(&aws);
    let name = format!("switchboard/test/{}", ulid::Ulid::new());
    let created = sm.create_secret().name(&name).secret_string("s3cret-from-secrets-manager").send().await.unwrap();
    let arn = created.arn.unwrap();

    let config = kit::Config::from_map([("JWT_SECRET_SECRET_ARN", arn.as_str())]);
    assert_eq!(config.secret("JWT_SECRET", &aws).await.unwrap(), "s3cret-from-secrets-manager");

    // An ARN that does not exist fails the cold start with the secret's name, not later.
    let missing = kit::Config::from_map([("JWT_SECRET_SECRET_ARN", format!("{arn}-gone"))]);
    let err = missing.secret("JWT_SECRET", &aws).await.unwrap_err();
    assert!(err.to_string().contains("JWT_SECRET"), "{err}");
}
