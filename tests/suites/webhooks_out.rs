//! Outbound webhooks end to end on the local stack: an admin subscribes the local receiver (which
//! verifies every delivery with the Standard Webhooks specification's Python library), customers'
//! messages and agents' actions reach it signed, a failing receiver is retried on the schedule and
//! once recovered gets everything exactly once, the delivery log shows every attempt, a logged
//! delivery is sent again on demand, and a rotated secret keeps both secrets valid meanwhile.

use std::collections::BTreeMap;

use domain::Role;
use serde_json::{json, Value};
use switchboard_e2e::*;
use switchboard_local::receiver::WebhookReceiver;

fn root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// The receiver's deliveries, grouped by webhook-id.
async fn by_id(receiver: &WebhookReceiver) -> BTreeMap<String, Vec<Value>> {
    let mut out: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for d in receiver.received().await.unwrap() {
        out.entry(d["id"].as_str().unwrap_or_default().to_owned()).or_default().push(d);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn subscribed_events_arrive_signed_retried_until_the_receiver_recovers_and_exactly_once_after() {
    let t = spawn_stack().await;
    let receiver = WebhookReceiver::start(&root()).await.unwrap();
    let admin = t.token_as("root", Role::Admin);

    // An agent may not subscribe anything; an admin subscribes the receiver to three events.
    let body = json!({ "url": format!("{}/in", receiver.base_url), "events": ["conversation.created", "message.created", "conversation.resolved"] });
    let (s, _) = t.send_as("POST", "/webhook-endpoints", &t.token(), Some(body.clone())).await;
    assert_eq!(s, 403);
    let (s, created) = t.send_as("POST", "/webhook-endpoints", &admin, Some(body)).await;
    assert_eq!(s, 201, "{created}");
    let endpoint = created["endpoint"]["id"].as_str().unwrap().to_owned();
    let secret = created["secret"].as_str().unwrap().to_owned();
    // The receiver is down for the first three attempts.
    receiver.set(&[&secret], 3).await.unwrap();

    // A customer texts in: a new conversation and its first message.
    let from = random_number();
    assert_eq!(t.text_in(&new_sid(), &from, "Where is my order?").await.status(), 200);
    let delivered = eventually("both events delivered after the receiver recovered", || async {
        let got = by_id(&receiver).await;
        let ok: Vec<&Value> = got.values().flatten().filter(|d| d["status"] == 204).collect();
        (ok.len() == 2).then_some(got)
    })
    .await;
    let mut kinds: Vec<&str> =
        delivered.values().flatten().filter(|d| d["status"] == 204).map(|d| d["type"].as_str().unwrap()).collect();
    kinds.sort();
    assert_eq!(kinds, ["conversation.created", "message.created"]);
    let failures = delivered.values().flatten().filter(|d| d["status"] == 500).count();
    assert_eq!(failures, 3, "three attempts met the receiver down: {delivered:?}");
    assert!(delivered.values().flatten().all(|d| d["verified"] == true), "every attempt verifies: {delivered:?}");
    for (id, attempts) in &delivered {
        assert!(id.starts_with("msg_"));
        assert_eq!(attempts.iter().filter(|d| d["status"] == 204).count(), 1, "{id} succeeded exactly once");
    }
    let message = delivered.values().flatten().find(|d| d["type"] == "message.created" && d["status"] == 204).unwrap();
    assert_eq!(message["payload"]["data"]["message"]["text"], "Where is my order?");
    assert_eq!(message["payload"]["data"]["conversation"]["status"], "open");
    let conversation = message["payload"]["data"]["conversation_id"].as_str().unwrap().to_owned();

    // The delivery log shows every attempt, newest delivery first.
    let (s, log) = t.get_as(&format!("/webhook-endpoints/{endpoint}/deliveries"), &admin).await;
    assert_eq!(s, 200, "{log}");
    let items = log["items"].as_array().unwrap();
    assert_eq!(items.len(), 2, "{log}");
    let attempts: usize = items.iter().map(|d| d["attempts"].as_array().unwrap().len()).sum();
    assert_eq!(attempts, 5, "two successes after three failures: {log}");
    assert!(items.iter().all(|d| d["state"] == "succeeded"));
    assert!(items[0]["msg_id"].as_str().unwrap() >= items[1]["msg_id"].as_str().unwrap());

    // Resolving reaches it; a note (not subscribed) does not.
    let (s, b) = t
        .send_as("PATCH", &format!("/conversations/{conversation}"), &admin, Some(json!({ "status": "resolved" })))
        .await;
    assert_eq!(s, 200, "{b}");
    let resolved = eventually("conversation.resolved delivered", || async {
        receiver
            .received()
            .await
            .unwrap()
            .into_iter()
            .find(|d| d["type"] == "conversation.resolved" && d["status"] == 204)
    })
    .await;
    assert_eq!(resolved["payload"]["data"]["conversation"]["status"], "resolved");

    // An admin sends one delivery again: the same webhook-id, freshly signed.
    let first = items[1]["msg_id"].as_str().unwrap().to_owned();
    let (s, b) =
        t.send_as("POST", &format!("/webhook-endpoints/{endpoint}/deliveries/{first}/redeliver"), &admin, None).await;
    assert_eq!(s, 202, "{b}");
    eventually("the redelivery arrived", || async {
        let got = by_id(&receiver).await;
        (got[&first].iter().filter(|d| d["status"] == 204).count() == 2).then_some(())
    })
    .await;
    let (s, _) = t
        .send_as(
            "POST",
            &format!("/webhook-endpoints/{endpoint}/deliveries/msg_01ARZ3NDEKTSV4RRFFQ69G5FAV/redeliver"),
            &admin,
            None,
        )
        .await;
    assert_eq!(s, 404);

    // A rotation: both secrets sign for a day, so a receiver still holding the old one verifies.
    let (s, rotated) = t.send_as("POST", &format!("/webhook-endpoints/{endpoint}/rotate-secret"), &admin, None).await;
    assert_eq!(s, 200, "{rotated}");
    assert_ne!(rotated["secret"], secret);
    assert_eq!(rotated["endpoint"]["secrets"].as_array().unwrap().len(), 2);
    let before = receiver.received().await.unwrap().len();
    assert_eq!(t.text_in(&new_sid(), &from, "Any news?").await.status(), 200);
    let later = eventually("the next message delivered", || async {
        let all = receiver.received().await.unwrap();
        (all.len() > before).then(|| all[before].clone())
    })
    .await;
    assert_eq!((later["verified"].as_bool(), later["status"].as_u64()), (Some(true), Some(204)), "{later}");

    // Disabled: nothing more is sent; the list shows it.
    let (s, b) =
        t.send_as("PUT", &format!("/webhook-endpoints/{endpoint}"), &admin, Some(json!({ "enabled": false }))).await;
    assert_eq!((s, &b["endpoint"]["enabled"]), (200, &json!(false)), "{b}");
    let (s, list) = t.get_as("/webhook-endpoints", &admin).await;
    assert_eq!(s, 200);
    assert_eq!(list["endpoints"][0]["enabled"], false);
    assert!(list["events"].as_array().unwrap().iter().any(|e| e == "sla.breached"));
    assert!(!list.to_string().contains(rotated["secret"].as_str().unwrap()), "secrets stay masked");
    let (s, _) = t.send_as("DELETE", &format!("/webhook-endpoints/{endpoint}"), &admin, None).await;
    assert_eq!(s, 204);
    let (s, _) = t.get_as(&format!("/webhook-endpoints/{endpoint}/deliveries"), &admin).await;
    assert_eq!(s, 404);
}
