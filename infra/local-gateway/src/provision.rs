//! Creates the template's table and queues on the local servers, under a stack name of our choosing
//! (tests use a fresh one each, so they run side by side).

use std::collections::HashMap;

use anyhow::{anyhow, Context, Result};
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection, ProjectionType,
    ScalarAttributeType, TimeToLiveSpecification,
};
use aws_sdk_sqs::types::QueueAttributeName;
use serde_yaml::Value;

use crate::template::Template;

#[derive(Debug, Clone)]
pub struct Provisioned {
    pub stack: String,
    pub table: String,
    /// Queue logical id → URL.
    pub queue_urls: HashMap<String, String>,
    /// Queue logical id → ARN.
    pub queue_arns: HashMap<String, String>,
    /// Queue logical id → maxReceiveCount of its redrive policy.
    pub max_receives: HashMap<String, u32>,
    /// State machine logical id → ARN.
    pub state_machine_arns: HashMap<String, String>,
    /// Bucket logical id → name.
    pub buckets: HashMap<String, String>,
}

fn key_schema(v: Option<&Value>) -> Result<Vec<KeySchemaElement>> {
    v.and_then(Value::as_sequence)
        .ok_or_else(|| anyhow!("KeySchema missing"))?
        .iter()
        .map(|k| {
            let name =
                k.get("AttributeName").and_then(Value::as_str).ok_or_else(|| anyhow!("AttributeName missing"))?;
            let ty = k.get("KeyType").and_then(Value::as_str).ok_or_else(|| anyhow!("KeyType missing"))?;
            Ok(KeySchemaElement::builder().attribute_name(name).key_type(KeyType::from(ty)).build()?)
        })
        .collect()
}

pub async fn create_table(t: &Template, stack: &str, ddb: &aws_sdk_dynamodb::Client) -> Result<String> {
    let def = t.table(stack)?;
    let p = &def.properties;
    let attrs = p
        .get("AttributeDefinitions")
        .and_then(Value::as_sequence)
        .ok_or_else(|| anyhow!("AttributeDefinitions missing"))?
        .iter()
        .map(|a| {
            let name = a.get("AttributeName").and_then(Value::as_str).unwrap_or_default();
            let ty = a.get("AttributeType").and_then(Value::as_str).unwrap_or("S");
            Ok(AttributeDefinition::builder()
                .attribute_name(name)
                .attribute_type(ScalarAttributeType::from(ty))
                .build()?)
        })
        .collect::<Result<Vec<_>>>()?;
    let mut gsis = vec![];
    for g in p.get("GlobalSecondaryIndexes").and_then(Value::as_sequence).into_iter().flatten() {
        let projection =
            g.get("Projection").and_then(|p| p.get("ProjectionType")).and_then(Value::as_str).unwrap_or("ALL");
        gsis.push(
            GlobalSecondaryIndex::builder()
                .index_name(g.get("IndexName").and_then(Value::as_str).unwrap_or_default())
                .set_key_schema(Some(key_schema(g.get("KeySchema"))?))
                .projection(Projection::builder().projection_type(ProjectionType::from(projection)).build())
                .build()?,
        );
    }
    let billing = p.get("BillingMode").and_then(Value::as_str).unwrap_or("PAY_PER_REQUEST");
    ddb.create_table()
        .table_name(&def.name)
        .set_attribute_definitions(Some(attrs))
        .set_key_schema(Some(key_schema(p.get("KeySchema"))?))
        .set_global_secondary_indexes((!gsis.is_empty()).then_some(gsis))
        .billing_mode(BillingMode::from(billing))
        .send()
        .await
        .with_context(|| format!("creating table {}", def.name))?;
    if let Some(ttl) = p.get("TimeToLiveSpecification") {
        if ttl.get("Enabled").and_then(Value::as_bool) == Some(true) {
            let attr = ttl.get("AttributeName").and_then(Value::as_str).unwrap_or("ttl");
            ddb.update_time_to_live()
                .table_name(&def.name)
                .time_to_live_specification(
                    TimeToLiveSpecification::builder().attribute_name(attr).enabled(true).build()?,
                )
                .send()
                .await
                .context("enabling TTL")?;
        }
    }
    Ok(def.name)
}

pub async fn create_queues(t: &Template, stack: &str, sqs: &aws_sdk_sqs::Client) -> Result<Provisioned> {
    let mut urls = HashMap::new();
    let mut arns: HashMap<String, String> = HashMap::new();
    let mut max_receives = HashMap::new();
    for q in t.queues(stack)? {
        let mut attrs: HashMap<QueueAttributeName, String> =
            q.attributes.iter().map(|(k, v)| (QueueAttributeName::from(k.as_str()), v.clone())).collect();
        if let Some((target, max)) = &q.dead_letter_target {
            let arn = arns
                .get(target)
                .ok_or_else(|| anyhow!("{}: dead-letter queue {target} not created first", q.logical_id))?;
            let policy = serde_json::json!({ "deadLetterTargetArn": arn, "maxReceiveCount": max }).to_string();
            attrs.insert(QueueAttributeName::RedrivePolicy, policy);
            max_receives.insert(q.logical_id.clone(), *max);
        }
        let out = sqs
            .create_queue()
            .queue_name(&q.name)
            .set_attributes(Some(attrs))
            .send()
            .await
            .with_context(|| format!("creating queue {}", q.name))?;
        let url = out.queue_url.ok_or_else(|| anyhow!("no URL for {}", q.name))?;
        let got =
            sqs.get_queue_attributes().queue_url(&url).attribute_names(QueueAttributeName::QueueArn).send().await?;
        let arn = got
            .attributes
            .and_then(|a| a.get(&QueueAttributeName::QueueArn).cloned())
            .ok_or_else(|| anyhow!("no ARN for {}", q.name))?;
        urls.insert(q.logical_id.clone(), url);
        arns.insert(q.logical_id, arn);
    }
    Ok(Provisioned {
        stack: stack.to_owned(),
        table: String::new(),
        queue_urls: urls,
        queue_arns: arns,
        max_receives,
        state_machine_arns: HashMap::new(),
        buckets: HashMap::new(),
    })
}

/// The template's state machines on moto's Step Functions (its execution engine is on: see
/// infra/local/moto_server.py); their Lambda tasks name the local function ARNs.
pub async fn create_state_machines(
    t: &Template,
    stack: &str,
    sfn: &aws_sdk_sfn::Client,
) -> Result<HashMap<String, String>> {
    let mut arns = HashMap::new();
    for m in t.state_machines(stack)? {
        let out = sfn
            .create_state_machine()
            .name(&m.name)
            .definition(&m.definition)
            .role_arn("arn:aws:iam::000000000000:role/switchboard-local-states")
            .r#type(aws_sdk_sfn::types::StateMachineType::Standard)
            .send()
            .await
            .with_context(|| format!("creating state machine {}", m.name))?;
        arns.insert(m.logical_id, out.state_machine_arn);
    }
    Ok(arns)
}

/// The template's buckets on moto's S3.
pub async fn create_buckets(t: &Template, stack: &str, s3: &aws_sdk_s3::Client) -> Result<HashMap<String, String>> {
    let mut out = HashMap::new();
    for (logical_id, name) in t.buckets(stack) {
        s3.create_bucket().bucket(&name).send().await.with_context(|| format!("creating bucket {name}"))?;
        out.insert(logical_id, name);
    }
    Ok(out)
}

/// Verifies sending domains on moto's SES (in AWS, the template's email identity with DKIM).
pub async fn verify_email_domains(domains: &[String], ses: &aws_sdk_sesv2::Client) -> Result<()> {
    for d in domains {
        match ses.create_email_identity().email_identity(d).send().await {
            Ok(_) => {}
            // Another stack of this run verified it first.
            Err(e) if e.as_service_error().is_some_and(|s| s.is_already_exists_exception()) => {}
            Err(e) => {
                return Err(anyhow::Error::new(e).context(format!("verifying {d} in SES")));
            }
        }
    }
    Ok(())
}

/// The table, every queue, bucket and state machine of the template, for one stack name.
pub async fn provision(t: &Template, stack: &str, aws: &aws_config::SdkConfig) -> Result<Provisioned> {
    let ddb = aws_sdk_dynamodb::Client::new(aws);
    let sqs = aws_sdk_sqs::Client::new(aws);
    let table = create_table(t, stack, &ddb).await?;
    let mut p = create_queues(t, stack, &sqs).await?;
    p.table = table;
    p.state_machine_arns = create_state_machines(t, stack, &aws_sdk_sfn::Client::new(aws)).await?;
    p.buckets = create_buckets(t, stack, &aws_sdk_s3::Client::new(aws)).await?;
    Ok(p)
}
