//! Finance end to end on the local stack: every message priced as it is stored, the provider's
//! price reconciled beside the estimate, reports (JSON and CSV) equal to the ledger's entries,
//! budget alerts once per threshold, and the hard stop.

use domain::ports::AgentStore;
use std::collections::HashMap;

use domain::finance::ledger::Month;
use domain::finance::LedgerEntry;
use domain::ports::{AnalyticsStore, BudgetStore, ConnectionStore, CostLedger, RoutingStore};
use kit::auth::Role;
use switchboard_e2e::*;

/// `"0.012345"` → 12345 (the reports' fixed six-decimal amounts, parsed without floating point).
fn micros(s: &str) -> i64 {
    let (neg, s) = s.strip_prefix('-').map_or((false, s), |r| (true, r));
    let (i, f) = s.split_once('.').unwrap();
    let v = i.parse::<i64>().unwrap() * 1_000_000 + f.parse::<i64>().unwrap();
    if neg {
        -v
    } else {
        v
    }
}

async fn conversation_of(s: &TestStack, from: &str) -> String {
    eventually("the conversation to appear", || async {
        s.conversations()
            .await
            .into_iter()
            .find(|c| c["last_inbound"]["contact_address"] == from)
            .map(|c| c["id"].as_str().unwrap().to_owned())
    })
    .await
}

async fn report(s: &TestStack, token: &str, month: &str, query: &str) -> serde_json::Value {
    let (status, body) = s.get_as(&format!("/finance/reports/{month}?{query}"), token).await;
    assert_eq!(status, 200, "{body}");
    body
}

#[tokio::test]
async fn a_day_of_mixed_traffic_reports_what_the_ledger_holds_and_reconciles_provider_prices() {
    let s = spawn_stack().await;
    let finance = s.token_as("fiona", Role::Finance);
    let (a, b) = (random_number(), random_number());
    // Three customer texts from two people; three replies: 1, 2 (161 GSM-7 characters) and
    // 1 (UCS-2 because of an emoji) segments.
    for (from, text) in [(&a, "Where is my order?"), (&b, "Hi"), (&a, "Hello?")] {
        assert_eq!(s.text_in(&new_sid(), from, text).await.status(), 200);
    }
    let conv_a = conversation_of(&s, &a).await;
    let conv_b = conversation_of(&s, &b).await;
    eventually("all three inbound messages stored", || async {
        (s.messages(&conv_a).await.len() + s.messages(&conv_b).await.len() == 3).then_some(())
    })
    .await;
    let long = "x".repeat(161);
    for (conv, key, text) in
        [(&conv_a, "r1", "On its way!"), (&conv_a, "r2", long.as_str()), (&conv_b, "r3", "Thanks 🙏")]
    {
        let (status, body) = s.reply(conv, key, text).await;
        assert_eq!(status, 202, "{body}");
    }
    let month = Month::of(time::OffsetDateTime::now_utc()).to_string();

    // Fake Twilio delivers, then rates each message at 0.0079 a segment; the sender reconciles.
    let by_channel = eventually("the three replies to be reconciled", || async {
        let r = report(&s, &finance, &month, "by=channel").await;
        (r["total"]["reconciled"] == 3).then_some(r)
    })
    .await;
    let rows: HashMap<String, serde_json::Value> = by_channel["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (format!("{}/{}", r["key"].as_str().unwrap(), r["direction"].as_str().unwrap()), r.clone()))
        .collect();
    let inbound = &rows["sms/inbound"];
    let outbound = &rows["sms/outbound"];
    assert_eq!((inbound["messages"].as_i64(), outbound["messages"].as_i64()), (Some(3), Some(3)));
    // Built-in card, US: inbound 0.0083 + 0.0025 carrier fee a segment; outbound 0.0083 + 0.003.
    assert_eq!(inbound["provider_estimate"]["micros"], 3 * 10_800);
    assert_eq!(outbound["provider_estimate"]["micros"], 4 * 11_300);
    assert_eq!(outbound["actual"]["micros"], 4 * 7_900, "Twilio's price, beside the estimate");
    assert!(outbound["aws"]["micros"].as_i64().unwrap() > 0, "the pipeline's AWS share is counted");
    assert!(inbound["aws"]["micros"].as_i64().unwrap() > 0);

    // Every message shows its own cost.
    let replies: Vec<serde_json::Value> =
        s.messages(&conv_a).await.into_iter().filter(|m| m["direction"] == "outbound").collect();
    let two_part = replies.iter().find(|m| m["metadata"]["sms_segments"] == 2).expect("the long reply");
    assert_eq!(two_part["cost"]["provider_micros"], 22_600);
    assert_eq!(two_part["cost"]["actual_micros"], 15_800);
    assert_eq!(two_part["cost"]["rate_card_version"], 0);

    // The ledger's entries, read directly, sum to the report's total.
    let day = time::OffsetDateTime::now_utc().date();
    let entries: Vec<LedgerEntry> = s.store.entries(&s.workspace, day, 1000, None).await.unwrap().items;
    let sum = entries.iter().fold(domain::finance::Totals::default(), |t, e| t + e.totals);
    assert_eq!(sum.estimated_micros(), by_channel["total"]["estimated_total"]["micros"].as_i64().unwrap());
    assert_eq!(sum.actual_micros, by_channel["total"]["actual"]["micros"].as_i64().unwrap());
    assert_eq!(sum.messages, 6);

    // The CSV says the same.
    let csv = s
        .http
        .get(s.url(&format!("/finance/reports/{month}?by=channel&format=csv")))
        .bearer_auth(&finance)
        .send()
        .await
        .unwrap();
    assert_eq!(csv.status(), 200);
    assert!(csv.headers()["content-disposition"].to_str().unwrap().contains(".csv"));
    let text = csv.text().await.unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let col = |name: &str| header.iter().position(|h| *h == name).unwrap();
    let csv_total: i64 = lines.map(|l| micros(l.split(',').nth(col("estimated_total")).unwrap())).sum();
    assert_eq!(csv_total, sum.estimated_micros());

    // By agent and by contact, the same money.
    let by_agent = report(&s, &finance, &month, "by=agent").await;
    let alice = by_agent["rows"].as_array().unwrap().iter().find(|r| r["key"] == "alice").expect("alice's row");
    assert_eq!(alice["messages"], 3);
    let by_contact = report(&s, &finance, &month, "by=contact").await;
    assert_eq!(by_contact["rows"].as_array().unwrap().len(), 2);

    // The reconciliation audit balances.
    let (status, audit) = s.get_as(&format!("/finance/reports/{month}/reconciliation"), &finance).await;
    assert_eq!(status, 200, "{audit}");
    assert_eq!(audit["balanced"], true, "{audit}");
    assert_eq!(audit["entries"], entries.len());

    // Agents do not read finance reports.
    let (status, _) = s.get(&format!("/finance/reports/{month}")).await;
    assert_eq!(status, 403);
}

/// The budget alerts pushed to a finance user's socket: waits for `want`, then a moment more so a
/// duplicate would show.
async fn budget_alerts(socket: &mut AgentSocket, want: usize) -> Vec<serde_json::Value> {
    let is_alert = |f: &serde_json::Value| f["event"]["type"] == "budget_threshold_reached";
    let mut out = Vec::new();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while out.len() < want && std::time::Instant::now() < deadline {
        out.extend(socket.drain(std::time::Duration::from_millis(500)).await.into_iter().filter(is_alert));
    }
    out.extend(socket.drain(std::time::Duration::from_secs(1)).await.into_iter().filter(is_alert));
    out.into_iter().map(|f| f["event"].clone()).collect()
}

#[tokio::test]
async fn budgets_alert_once_per_threshold_and_the_hard_stop_refuses_paid_sends() {
    let s = spawn_stack().await;
    let finance = s.token_as("fiona", Role::Finance);
    // Alerts reach finance users' screens through the notifier.
    let mut screen = connect_socket(&s.stack.ws_url, &finance, false).await.expect("finance connects");
    // 0.03 a month on SMS, hard stop: an inbound text (~0.0108) then a reply (~0.0113) pass 50 %,
    // a second text passes 80 % and 100 %.
    let (status, body) = s
        .send_as(
            "PUT",
            "/finance/budgets/sms",
            &finance,
            Some(serde_json::json!({"monthly_limit": "0.03", "hard_stop": true})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, _) =
        s.send_as("PUT", "/finance/budgets/sms", &s.token(), Some(serde_json::json!({"monthly_limit": "1"}))).await;
    assert_eq!(status, 403, "agents do not set budgets");

    let from = random_number();
    assert_eq!(s.text_in(&new_sid(), &from, "Hello").await.status(), 200);
    let conv = conversation_of(&s, &from).await;
    let (status, body) = s.reply(&conv, "k1", "Hi! How can I help?").await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(s.text_in(&new_sid(), &from, "My parcel").await.status(), 200);
    eventually("the second text to be stored", || async { (s.messages(&conv).await.len() == 3).then_some(()) }).await;
    // More traffic after the crossing alerts nothing again.
    assert_eq!(s.text_in(&new_sid(), &from, "Anyone?").await.status(), 200);
    eventually("the third text to be stored", || async { (s.messages(&conv).await.len() == 4).then_some(()) }).await;

    let mut thresholds: Vec<i64> =
        budget_alerts(&mut screen, 3).await.iter().map(|a| a["threshold_percent"].as_i64().unwrap()).collect();
    thresholds.sort_unstable();
    assert_eq!(thresholds, vec![50, 80, 100], "each threshold alerts exactly once");

    // Over the limit: a paid reply is refused with the reason, and nothing is stored or sent.
    let (status, body) = s.reply(&conv, "k2", "Checking now").await;
    assert_eq!(status, 402, "{body}");
    assert_eq!(body["error"]["code"], "budget_exceeded");
    assert!(body["error"]["message"].as_str().unwrap().contains("sms budget"), "{body}");
    assert_eq!(s.messages(&conv).await.iter().filter(|m| m["direction"] == "outbound").count(), 1);
    // Customers can still write in; free channels are not stopped (preview of a Telegram draft).
    let (status, preview) = s
        .send_as("POST", "/finance/preview", &s.token(), Some(serde_json::json!({"channel": "telegram", "text": "hi"})))
        .await;
    assert_eq!(status, 200, "{preview}");
    assert_eq!(preview["refused_by_budget"], serde_json::Value::Null);
    assert_eq!(preview["estimate"]["provider"]["micros"], 0);
    let (_, preview) = s
        .send_as(
            "POST",
            "/finance/preview",
            &s.token(),
            Some(serde_json::json!({"channel": "sms", "text": "hi", "to": from})),
        )
        .await;
    assert!(preview["refused_by_budget"].as_str().is_some(), "{preview}");

    let (status, budgets) = s.get_as("/finance/budgets", &finance).await;
    assert_eq!(status, 200, "{budgets}");
    let sms = &budgets["budgets"][0];
    assert_eq!(sms["thresholds_alerted"], serde_json::json!([50, 80, 100]));
    assert_eq!(sms["paid_sends_stopped"], true);

    // Raising the budget lets paid sends through again.
    let (status, _) = s
        .send_as(
            "PUT",
            "/finance/budgets/sms",
            &finance,
            Some(serde_json::json!({"monthly_limit": "10", "hard_stop": true})),
        )
        .await;
    assert_eq!(status, 200);
    let (status, body) = s.reply(&conv, "k3", "Checking now").await;
    assert_eq!(status, 202, "{body}");
}

#[tokio::test]
async fn a_new_rate_card_version_prices_what_follows_and_costs_name_their_version() {
    let s = spawn_stack().await;
    let finance = s.token_as("fiona", Role::Finance);
    let (status, cards) = s.get_as("/finance/rate-cards", &finance).await;
    assert_eq!(status, 200, "{cards}");
    assert_eq!(cards["in_force"]["version"], 0);
    let mut draft = cards["builtin"].clone();
    draft.as_object_mut().unwrap().remove("version");
    draft["effective_from"] = "2020-01-01T00:00:00Z".into();
    for r in draft["sms"].as_array_mut().unwrap() {
        if r["country"] == "US" && r["direction"] == "outbound" {
            r["per_segment"] = "0.02".into();
        }
    }
    let (status, created) = s.send_as("POST", "/finance/rate-cards", &finance, Some(draft)).await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["rate_card"]["version"], 1);

    let from = random_number();
    assert_eq!(s.text_in(&new_sid(), &from, "Hello").await.status(), 200);
    let conv = conversation_of(&s, &from).await;
    let (status, body) = s.reply(&conv, "k1", "Hi").await;
    assert_eq!(status, 202, "{body}");
    let cost = &body["message"]["cost"];
    assert_eq!(cost["rate_card_version"], 1);
    assert_eq!(cost["provider_micros"], 23_000, "0.02 + 0.003 carrier fee");
    let (_, cards) = s.get_as("/finance/rate-cards", &finance).await;
    assert_eq!(cards["in_force"]["version"], 1);
}

type Item = HashMap<String, aws_sdk_dynamodb::types::AttributeValue>;

/// The key of a scanned item.
fn key_of(it: &Item) -> Item {
    [("PK", it["PK"].clone()), ("SK", it["SK"].clone())].into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
}

async fn delete(client: &aws_sdk_dynamodb::Client, table: &str, it: &Item) {
    client.delete_item().table_name(table).set_key(Some(key_of(it))).send().await.unwrap();
}

/// An existing table's items as the design before sharding wrote them: counters and ledger
/// entries in one partition per month and day, conversations under unsharded index keys.
async fn back_to_the_unsharded_keys(s: &TestStack) {
    use aws_sdk_dynamodb::types::AttributeValue;
    let (client, table) = (s.store.client(), s.store.table());
    let ws = format!("WS#{}#", s.workspace);
    let strip = |pk: &str| pk.rsplit_once('#').unwrap().0.to_owned();
    let items = client.scan().table_name(table).send().await.unwrap().items.unwrap_or_default();
    let mut shared_sort_keys: HashMap<(String, String), usize> = HashMap::new();
    for it in &items {
        if it.get("entity").and_then(|e| e.as_s().ok()).is_some_and(|e| e == "stats") {
            let key = (strip(it["PK"].as_s().unwrap()), it["SK"].as_s().unwrap().clone());
            *shared_sort_keys.entry(key).or_default() += 1;
        }
    }
    let mut moved = 0;
    for it in items {
        let pk = it["PK"].as_s().unwrap().clone();
        let entity = it.get("entity").and_then(|e| e.as_s().ok()).cloned().unwrap_or_default();
        if !pk.starts_with(&ws) {
            continue;
        }
        match entity.as_str() {
            // An agent's connection was in one list of the workspace (and its pointer), a budget
            // in the workspace's one budget partition.
            "connection" | "budget" => {
                if pk.ends_with("#CONN#0") || pk.ends_with("#BUDGET#0") {
                    let mut old = it.clone();
                    old.insert("PK".into(), AttributeValue::S(strip(&pk)));
                    client.put_item().table_name(table).set_item(Some(old)).send().await.unwrap();
                    moved += 1;
                }
                delete(client, table, &it).await;
            }
            // An agent's whole state, load included, was their roster entry.
            "agent" => {
                let mut old = it.clone();
                let id = it["id"].as_s().unwrap().clone();
                old.insert("PK".into(), AttributeValue::S(format!("{ws}AGENTS")));
                old.insert("SK".into(), AttributeValue::S(id.clone()));
                old.remove("rev");
                let held = if id == "ann" { "200" } else { "100" };
                old.insert("load".into(), AttributeValue::N(held.into()));
                client.put_item().table_name(table).set_item(Some(old)).send().await.unwrap();
                delete(client, table, &it).await;
                moved += 1;
            }
            // The roster's replicas did not exist.
            "roster" => {
                delete(client, table, &it).await;
            }
            // Shards of one aggregate would fold into one item: those stay where they are.
            "stats" if shared_sort_keys.get(&(strip(&pk), it["SK"].as_s().unwrap().clone())) > Some(&1) => {}
            "cost_counter" | "ledger_entry" | "stats" | "waiting" => {
                let mut old = it.clone();
                old.insert("PK".into(), AttributeValue::S(strip(&pk)));
                client.put_item().table_name(table).set_item(Some(old)).send().await.unwrap();
                delete(client, table, &it).await;
                moved += 1;
            }
            "conversation" => {
                client
                    .update_item()
                    .table_name(table)
                    .set_key(Some(key_of(&it)))
                    .update_expression("SET GSI1PK = :s, GSI2PK = :a")
                    .expression_attribute_values(":s", AttributeValue::S(strip(it["GSI1PK"].as_s().unwrap())))
                    .expression_attribute_values(":a", AttributeValue::S(strip(it["GSI2PK"].as_s().unwrap())))
                    .send()
                    .await
                    .unwrap();
                moved += 1;
            }
            _ => {}
        }
    }
    assert!(moved > 3, "the run left counters, entries and a conversation to move back");
}

#[tokio::test]
async fn an_existing_table_moves_to_the_sharded_keys_and_reports_the_same() {
    let s = spawn_stack().await;
    let finance = s.token_as("fiona", Role::Finance);
    let from = random_number();
    assert_eq!(s.text_in(&new_sid(), &from, "Where is my order?").await.status(), 200);
    let conv = conversation_of(&s, &from).await;
    let (status, body) = s.reply(&conv, "m1", "On its way!").await;
    assert_eq!(status, 202, "{body}");
    let month = Month::of(time::OffsetDateTime::now_utc()).to_string();
    let before = eventually("the reply to be reconciled", || async {
        let r = report(&s, &finance, &month, "by=channel").await;
        (r["total"]["reconciled"] == 1).then_some(r)
    })
    .await;
    let day = time::OffsetDateTime::now_utc().date();
    let entries = s.store.entries(&s.workspace, day, 1000, None).await.unwrap().items;
    let hours = ("2000-01-01T00", "2999-12-31T23");
    let stats = || async {
        let got = s.store.aggregates(&s.workspace, "channel", hours.0, hours.1).await.unwrap();
        serde_json::to_value(got).unwrap()
    };
    // Nobody is online: the conversation waits in the routing queue.
    let queued = s.store.waiting(&s.workspace).await.unwrap();
    assert_eq!(queued.len(), 1, "the conversation waits for an agent");
    let aggregates = eventually("the analytics of the message and the reply", || async {
        let a = stats().await;
        (a[0][2]["counts"]["messages_in"] == 1 && a[0][2]["counts"]["messages_out"] == 1).then_some(a)
    })
    .await;

    // An agent's open tab, following the conversation.
    let tab = domain::realtime::Connection {
        id: domain::ConnectionId::parse("tab-before-the-upgrade=").unwrap(),
        workspace: s.workspace.clone(),
        agent: domain::AgentId::parse("ann").unwrap(),
        name: None,
        role: domain::model::Role::Agent,
        connected_at: time::OffsetDateTime::now_utc(),
        last_seen_at: time::OffsetDateTime::now_utc(),
        viewing: None,
        subscriptions: [domain::ConversationId::parse(&conv).unwrap()].into(),
        token_expires_at: None,
    };
    s.store.put_connection(&tab).await.unwrap();
    let budget = domain::finance::Budget::new(
        domain::finance::BudgetScope::Workspace,
        domain::finance::Currency::usd(),
        50_000_000,
        None,
        false,
        domain::AgentId::parse("fiona").unwrap(),
        time::OffsetDateTime::now_utc(),
    )
    .unwrap();
    s.store.put_budget(&s.workspace, &budget).await.unwrap();

    // Two agents, their roster entries holding their whole state as before the split.
    let (ann, bob) = (domain::AgentId::parse("ann").unwrap(), domain::AgentId::parse("bob").unwrap());
    let support: std::collections::BTreeSet<domain::TeamId> = [domain::TeamId::parse("support").unwrap()].into();
    for a in [&ann, &bob] {
        let mut profile = domain::routing::AgentState::first_seen(a.clone(), domain::routing::Presence::Away, 300);
        profile.teams = support.clone();
        s.store.put_agent(&s.workspace, &profile).await.unwrap();
    }

    // The table as an earlier release left it: the new code finds none of it.
    back_to_the_unsharded_keys(&s).await;
    assert!(s.store.agent_states(&s.workspace, &[ann.clone(), bob.clone()]).await.unwrap().is_empty());
    let listed = s.store.agents(&s.workspace).await.unwrap();
    assert_eq!(listed.iter().map(|a| a.load).collect::<Vec<_>>(), [200, 100], "the listing reads legacy entries whole");
    // Bob comes online before the run: his entry is adopted then, his load kept.
    let set = s
        .store
        .set_presence(&s.workspace, &bob, domain::routing::Presence::Online, 300, time::OffsetDateTime::now_utc())
        .await
        .unwrap();
    assert_eq!((set.state.load, &set.state.teams), (100, &support));
    assert!(s.store.agent_connections(&s.workspace, &tab.agent).await.unwrap().is_empty());
    assert!(s.store.budgets(&s.workspace).await.unwrap().is_empty());
    assert_eq!(report(&s, &finance, &month, "by=channel").await["total"]["messages"], 0);
    assert!(s.store.entries(&s.workspace, day, 1000, None).await.unwrap().items.is_empty());
    assert!(!s.conversations().await.iter().any(|c| c["id"] == conv.as_str()));
    assert!(s.store.waiting(&s.workspace).await.unwrap().is_empty());

    // One run moves it all; the report, the ledger and the inbox are as they were.
    let run = s.invoke("migrate-table", &serde_json::json!({})).await;
    assert!(run["conversations"].as_u64().is_some_and(|n| n >= 1), "{run}");
    assert!(run["counters"].as_u64().unwrap() >= 4, "{run}");
    assert_eq!(run["ledger_entries"].as_u64().unwrap() as usize, entries.len(), "{run}");
    assert!(run.get("next").is_none(), "one run finishes a small table: {run}");
    assert_eq!(report(&s, &finance, &month, "by=channel").await, before);
    assert_eq!(s.store.entries(&s.workspace, day, 1000, None).await.unwrap().items, entries);
    assert!(s.conversations().await.iter().any(|c| c["id"] == conv.as_str()));
    assert_eq!(stats().await, aggregates);
    assert_eq!(run["waiting"], 1, "{run}");
    assert_eq!(s.store.waiting(&s.workspace).await.unwrap(), queued);
    assert_eq!(run["connections"], 1, "{run}");
    assert_eq!(run["budgets"], 1, "{run}");
    assert_eq!(run["agents"], 1, "ann's entry; bob's was adopted when he came online: {run}");
    let mut states = s.store.agent_states(&s.workspace, &[ann.clone(), bob.clone()]).await.unwrap();
    states.sort_by(|a, b| a.id.cmp(&b.id));
    let held: Vec<_> = states.iter().map(|a| (a.id.as_str(), a.load, a.presence, &a.teams)).collect();
    use domain::routing::Presence::{Away, Online};
    assert_eq!(held, [("ann", 200, Away, &support), ("bob", 100, Online, &support)]);
    let roster = s.store.roster(&s.workspace).await.unwrap();
    assert_eq!(
        roster.iter().map(|a| (a.id.as_str(), a.presence)).collect::<Vec<_>>(),
        [("ann", Away), ("bob", Online)]
    );
    for _ in 0..4 {
        assert_eq!(s.store.budgets(&s.workspace).await.unwrap(), std::slice::from_ref(&budget), "every replica");
    }
    let conv_id = domain::ConversationId::parse(&conv).unwrap();
    let tabs = vec![tab.clone()];
    assert_eq!(s.store.agent_connections(&s.workspace, &tab.agent).await.unwrap(), tabs);
    assert_eq!(s.store.watching(&s.workspace, conv_id).await.unwrap(), tabs);
    assert_eq!(s.store.connections(&s.workspace).await.unwrap(), tabs);

    // Again: nothing left to move.
    let again = s.invoke("migrate-table", &serde_json::json!({"segment": 0, "segments": 1})).await;
    let moved =
        ["conversations", "counters", "ledger_entries", "aggregates", "waiting", "connections", "budgets", "agents"]
            .map(|k| again[k].as_u64());
    assert_eq!(moved, [Some(0); 8], "{again}");
}
