//! Agents in real time, end to end on the local stack with real WebSocket clients: $connect
//! authentication, routing by skill and capacity, push over @connections, typing and viewing,
//! presence steering new work, the waiting queue, and cleanup of dropped connections.

use std::time::Duration;

use domain::ports::{AgentStore, ConnectionStore, ConversationReader, RoutingStore};
use domain::routing::{AgentState, Presence, RoutingRules};
use domain::AgentId;
use kit::auth::Role;
use serde_json::json;
use switchboard_e2e::*;

async fn profile(t: &TestStack, id: &str, skills: &[&str], capacity: u32) {
    let agent = AgentState {
        id: AgentId::parse(id).unwrap(),
        presence: Presence::Offline,
        teams: Default::default(),
        skills: skills.iter().map(|s| (*s).to_owned()).collect(),
        capacity,
        load: 0,
        last_assigned_at: None,
    };
    t.store.put_agent(&t.workspace, &agent).await.unwrap();
}

async fn conversation_of(t: &TestStack, from: &str) -> serde_json::Value {
    eventually(&format!("the conversation of {from}"), || async {
        t.conversations().await.into_iter().find(|c| c["last_inbound"]["contact_address"] == from)
    })
    .await
}

#[tokio::test]
async fn two_agents_work_live_routing_push_typing_viewing_presence_and_cleanup() {
    let t = spawn_stack().await;
    let mut rules = RoutingRules::default();
    rules.skills.keywords.insert("refund".into(), "billing".into());
    t.store.put_routing_rules(&t.workspace, &rules).await.unwrap();
    profile(&t, "ann", &["billing"], 300).await;
    profile(&t, "bob", &[], 300).await;

    // A forged token never opens a socket, and nothing is stored.
    let forged = kit::auth::issue_token(
        "not-the-secret",
        &t.workspace,
        &AgentId::parse("ann").unwrap(),
        None,
        Role::Agent,
        time::Duration::hours(1),
    );
    assert_eq!(connect_socket(&t.stack.ws_url, &forged, false).await.err(), Some(401));
    assert_eq!(connect_socket(&t.stack.ws_url, "garbage", true).await.err(), Some(401));
    assert!(t.store.connections(&t.workspace).await.unwrap().is_empty());

    let mut ann = connect_socket(&t.stack.ws_url, &t.token_as("ann", Role::Agent), false).await.expect("ann connects");
    let mut bob = connect_socket(&t.stack.ws_url, &t.token_as("bob", Role::Agent), true).await.expect("bob connects");
    for s in [&mut ann, &mut bob] {
        let answer = s.act(json!({ "action": "presence", "status": "online" })).await;
        assert_eq!(answer["status"], "online", "{answer}");
    }
    ann.expect("bob coming online", |f| f["event"]["type"] == "presence_changed" && f["event"]["agent"] == "bob").await;

    // A refund question needs billing: it goes to ann, who sees it arrive on her socket.
    let alice = random_number();
    assert_eq!(t.text_in(&new_sid(), &alice, "I need a refund").await.status(), 200);
    let created = ann.expect("the new message", is_event("message_created")).await;
    assert_eq!(created["message"]["text"], "I need a refund");
    let conv = created["event"]["conversation_id"].as_str().unwrap().to_owned();
    let assigned = ann
        .expect("the assignment", |f| {
            f["event"]["type"] == "conversation_changed" && f["event"]["change"] == "assigned"
        })
        .await;
    assert_eq!(assigned["event"]["assignee"], "ann");
    assert_eq!(assigned["conversation"]["skills"], json!(["billing"]));

    // bob opens it: ann sees him viewing; ann types: bob (viewing) sees it, ann does not echo.
    let answer = bob.act(json!({ "action": "viewing", "conversation_id": conv })).await;
    assert_eq!(answer["conversation_id"], conv.as_str(), "{answer}");
    let viewing = ann.expect("bob viewing", is_event("agent_activity")).await;
    assert_eq!(
        (viewing["event"]["agent"].as_str(), viewing["event"]["activity"].as_str()),
        (Some("bob"), Some("viewing"))
    );
    ann.act(json!({ "action": "typing", "conversation_id": conv })).await;
    let typing = bob.expect("ann typing", |f| f["event"]["activity"] == "typing").await;
    assert_eq!(typing["event"]["agent"], "ann");
    // An unknown conversation is a clear error frame.
    let err = bob.act(json!({ "action": "typing", "conversation_id": domain::ConversationId::new() })).await;
    assert_eq!(err["error"]["code"], "not_found");

    // ann steps away: the next conversation goes to bob.
    ann.act(json!({ "action": "presence", "status": "away" })).await;
    let carol = random_number();
    t.text_in(&new_sid(), &carol, "hello").await;
    let to_bob =
        bob.expect("bob's assignment", |f| f["event"]["change"] == "assigned" && f["event"]["assignee"] == "bob").await;
    assert_eq!(to_bob["conversation"]["last_inbound"]["contact_address"], carol.as_str());

    // bob steps away too: the next one waits, and is assigned the moment ann is back.
    bob.act(json!({ "action": "presence", "status": "do_not_disturb" })).await;
    let dave = random_number();
    t.text_in(&new_sid(), &dave, "anyone there?").await;
    let waiting = conversation_of(&t, &dave).await;
    let waiting_id = waiting["id"].as_str().unwrap().to_owned();
    eventually("the conversation waits", || async {
        t.store
            .waiting(&t.workspace)
            .await
            .unwrap()
            .iter()
            .any(|w| w.conversation.to_string() == waiting_id)
            .then_some(())
    })
    .await;
    let back = ann.act(json!({ "action": "presence", "status": "online" })).await;
    assert_eq!(back["assigned_from_queue"], 1, "{back}");
    let dequeued = ann
        .expect("the waiting conversation", |f| {
            f["event"]["change"] == "assigned" && f["event"]["conversation_id"] == waiting_id.as_str()
        })
        .await;
    assert_eq!(dequeued["event"]["assignee"], "ann");
    assert!(t.store.waiting(&t.workspace).await.unwrap().is_empty());

    // bob's connection drops without a goodbye: it is cleaned up and he goes offline.
    drop(bob);
    eventually("bob's connection removed", || async {
        let left = t.store.connections(&t.workspace).await.unwrap();
        (!left.iter().any(|c| c.agent.as_str() == "bob")).then_some(())
    })
    .await;
    // $disconnect removes the connection, then writes the presence and announces it: once ann
    // hears it, the store says so too.
    ann.expect("bob going offline", |f| {
        f["event"]["type"] == "presence_changed" && f["event"]["presence"] == "offline"
    })
    .await;
    let agents = t.store.agents(&t.workspace).await.unwrap();
    assert_eq!(agents.iter().find(|a| a.id.as_str() == "bob").unwrap().presence, Presence::Offline);
    // Loads match what each holds.
    let load = |id: &str| agents.iter().find(|a| a.id.as_str() == id).unwrap().load;
    assert_eq!((load("ann"), load("bob")), (200, 100));

    // Utilisation in analytics: the online time each closed online period held (ann's first,
    // ended by "away"; bob's, ended by "do not disturb"), and each assignment's load against
    // capacity: bob took carol's chat at 100 of 300.
    let sup = t.token_as("sue", Role::Supervisor);
    let rows = eventually("utilisation in analytics", || async {
        let (s, a) = t.get_as("/analytics?dimension=agent", &sup).await;
        assert_eq!(s, 200, "{a}");
        let rows = a["rows"].as_array().cloned().unwrap_or_default();
        let row = |id: &str| rows.iter().find(|r| r["key"] == id).cloned();
        let (ann, bob) = (row("ann")?, row("bob")?);
        let done = ann["counts"]["assigned"] == 2
            && bob["counts"]["assigned"] == 1
            && ann["online_hours"].as_f64()? > 0.0
            && bob["online_hours"].as_f64()? > 0.0;
        done.then_some((ann, bob))
    })
    .await;
    let (ann_row, bob_row) = rows;
    let p50 = bob_row["load_at_assignment_pct"]["p50"].as_f64().unwrap();
    assert!((p50 - 100.0 / 3.0).abs() < 1.0, "bob's load at assignment: {bob_row}");
    assert_eq!(ann_row["load_at_assignment_pct"]["count"], 2, "{ann_row}");
    assert!(bob_row["online_hours"].as_f64().unwrap() < 0.1, "seconds, not hours: {bob_row}");
}

#[tokio::test]
async fn fifty_new_conversations_at_once_never_exceed_capacity_and_the_rest_wait_in_order() {
    let t = spawn_stack().await;
    profile(&t, "ann", &[], 300).await;
    profile(&t, "bob", &[], 200).await;
    for a in ["ann", "bob"] {
        t.store
            .set_presence(
                &t.workspace,
                &AgentId::parse(a).unwrap(),
                Presence::Online,
                0,
                time::OffsetDateTime::now_utc(),
            )
            .await
            .unwrap();
    }
    let numbers: Vec<String> = (0..50).map(|i| format!("+1415556{i:04}")).collect();
    let t = &t;
    let sends = numbers.iter().map(|n| async move { t.text_in(&new_sid(), n, "hi").await.status().as_u16() });
    assert!(futures::future::join_all(sends).await.iter().all(|s| *s == 200));
    let all = eventually("50 conversations routed or queued", || async {
        let convs = t.conversations().await;
        let queued = t.store.waiting(&t.workspace).await.unwrap().len();
        let assigned = convs.iter().filter(|c| !c["assignee"].is_null()).count();
        (convs.len() == 50 && assigned + queued == 50).then_some(convs)
    })
    .await;
    let agents = t.store.agents(&t.workspace).await.unwrap();
    for a in &agents {
        assert!(a.load <= a.capacity, "{} holds {} of {}", a.id, a.load, a.capacity);
        let held = all.iter().filter(|c| c["assignee"] == a.id.as_str()).count() as u32;
        assert_eq!(held * 100, a.load, "{}'s load is what they hold", a.id);
    }
    assert_eq!(all.iter().filter(|c| !c["assignee"].is_null()).count(), 5, "3 + 2 fit");

    // Room for three more: the three that waited longest are the ones assigned.
    let mut queue = t.store.waiting(&t.workspace).await.unwrap();
    queue.sort_by(domain::routing::queue_order);
    let expected: Vec<String> = queue.iter().take(3).map(|w| w.conversation.to_string()).collect();
    let mut ann = agents.iter().find(|a| a.id.as_str() == "ann").unwrap().clone();
    ann.capacity = 600;
    t.store.put_agent(&t.workspace, &ann).await.unwrap();
    let mut socket = connect_socket(&t.stack.ws_url, &t.token_as("ann", Role::Agent), false).await.unwrap();
    let answer = socket.act(json!({ "action": "presence", "status": "online" })).await;
    assert_eq!(answer["assigned_from_queue"], 3, "{answer}");
    for id in &expected {
        let c = t.store.conversation(&t.workspace, id.parse().unwrap()).await.unwrap().unwrap();
        assert_eq!(c.assignee.as_ref().map(|a| a.as_str()), Some("ann"), "queue order: {id}");
    }
    assert_eq!(t.store.waiting(&t.workspace).await.unwrap().len(), 42);
    let _ = socket.drain(Duration::from_millis(100)).await;
}

/// The inbox through the HTTP API, the way a team works it: an admin sets up a team and profiles,
/// a supervisor the rules; a conversation is routed, transferred with a note, annotated (the
/// mentioned agent hears it), answered with a canned response and resolved; every step is in the
/// audit trail and the contact's profile shows the history.
#[tokio::test]
async fn inbox_actions_admin_canned_and_audit_over_http() {
    let t = spawn_stack().await;
    let admin = t.token_as("ada", Role::Admin);
    let sup = t.token_as("sue", Role::Supervisor);
    let ann_t = t.token_as("ann", Role::Agent);
    let bob_t = t.token_as("bob", Role::Agent);

    let (s, b) = t.send_as("PUT", "/teams/billing", &admin, Some(json!({ "name": "Billing" }))).await;
    assert_eq!(s, 200, "{b}");
    for (agent, teams) in [("ann", json!(["billing"])), ("bob", json!(["billing"]))] {
        let body = json!({ "teams": teams, "skills": [], "capacity": 300 });
        let (s, b) = t.send_as("PUT", &format!("/agents/{agent}"), &admin, Some(body)).await;
        assert_eq!(s, 200, "{b}");
    }
    assert_eq!(t.send_as("PUT", "/agents/bob", &sup, Some(json!({ "capacity": 1 }))).await.0, 403);
    let rules = json!({ "team_by_channel": { "sms": "billing" } });
    assert_eq!(t.send_as("PUT", "/routing-rules", &ann_t, Some(rules.clone())).await.0, 403);
    let (s, b) = t.send_as("PUT", "/routing-rules", &sup, Some(rules)).await;
    assert_eq!(s, 200, "{b}");

    let mut ann = connect_socket(&t.stack.ws_url, &ann_t, false).await.expect("ann connects");
    let mut bob = connect_socket(&t.stack.ws_url, &bob_t, false).await.expect("bob connects");
    ann.act(json!({ "action": "presence", "status": "online" })).await;
    bob.act(json!({ "action": "presence", "status": "online" })).await;

    let from = random_number();
    assert_eq!(t.text_in(&new_sid(), &from, "my invoice is wrong").await.status(), 200);
    let conv = conversation_of(&t, &from).await;
    let id = conv["id"].as_str().unwrap().to_owned();
    let owner = eventually("the conversation is routed", || async {
        let (_, c) = t.get(&format!("/conversations/{id}")).await;
        c["conversation"]["assignee"].as_str().map(str::to_owned)
    })
    .await;
    let (owner_t, other, other_sock) =
        if owner == "ann" { (&ann_t, "bob", &mut bob) } else { (&bob_t, "ann", &mut ann) };

    // The views: the team's, the owner's.
    let (_, team) = t.get_as("/conversations?view=team", owner_t).await;
    assert!(team["items"].as_array().unwrap().iter().any(|c| c["id"] == id.as_str()), "{team}");
    let (_, mine) = t.get_as("/conversations?view=mine", owner_t).await;
    assert_eq!(mine["items"][0]["id"], id.as_str());

    // The owner hands it over with a note; the colleague's socket hears it.
    let transfer = json!({ "agent": other, "note": "billing dispute, customer is upset" });
    let (s, b) = t.send_as("PUT", &format!("/conversations/{id}/assignee"), owner_t, Some(transfer)).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["conversation"]["assignee"], other);
    let heard = other_sock
        .expect("the transfer", |f| f["event"]["change"] == "assigned" && f["event"]["assignee"] == other)
        .await;
    assert_eq!(heard["event"]["previous_assignee"], owner.as_str());
    // The former owner can no longer move it.
    let back = json!({ "agent": owner });
    assert_eq!(t.send_as("PUT", &format!("/conversations/{id}/assignee"), owner_t, Some(back)).await.0, 403);

    // A note mentioning the new owner: stored once, pushed, never a message.
    let note = t
        .http
        .post(t.url(&format!("/conversations/{id}/notes")))
        .bearer_auth(&sup)
        .header("idempotency-key", "note-1")
        .json(&json!({ "text": format!("@{other} refund approved up to $50") }))
        .send()
        .await
        .unwrap();
    assert_eq!(note.status().as_u16(), 201);
    other_sock.expect("the note", is_event("note_added")).await;
    let (_, notes) = t.get(&format!("/conversations/{id}/notes")).await;
    assert_eq!(notes["items"].as_array().unwrap().len(), 1);
    assert!(t.messages(&id).await.iter().all(|m| m["text"] != notes["items"][0]["text"]));

    // A canned response, previewed for this conversation.
    let canned = json!({ "scope": "workspace", "shortcut": "/refund", "title": "Refund",
        "body": "Hi {{contact.first_name | there}}, your refund for {{conversation.id}} is on its way." });
    let (s, created) = t.send_as("POST", "/canned-responses", &sup, Some(canned)).await;
    assert_eq!(s, 201, "{created}");
    let canned_id = created["canned_response"]["id"].as_str().unwrap().to_owned();
    let other_t = t.token_as(other, Role::Agent);
    let (_, found) = t.get_as("/canned-responses?q=/ref", &other_t).await;
    assert_eq!(found["items"][0]["canned_response"]["id"], canned_id.as_str());
    let (s, preview) = t
        .send_as(
            "POST",
            &format!("/canned-responses/{canned_id}/preview"),
            &other_t,
            Some(json!({ "conversation_id": id })),
        )
        .await;
    assert_eq!(s, 200, "{preview}");
    assert_eq!(preview["text"], format!("Hi there, your refund for {id} is on its way."));

    // Resolved with a tag: capacity comes back; the audit trail has every step in order.
    let (s, b) = t
        .send_as(
            "PATCH",
            &format!("/conversations/{id}"),
            &other_t,
            Some(json!({ "status": "resolved", "tags": { "add": ["refund"] } })),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    let (_, agents) = t.get("/agents").await;
    let load = agents["items"].as_array().unwrap().iter().find(|a| a["id"] == other).unwrap()["load"].clone();
    assert_eq!(load, 0);
    let (_, trail) = t.get(&format!("/audit?conversation={id}")).await;
    let actions: Vec<&str> = trail["items"].as_array().unwrap().iter().map(|e| e["action"].as_str().unwrap()).collect();
    assert_eq!(actions, ["assigned", "transferred", "note_added", "tags_changed", "resolved"]);
    let (_, workspace_trail) = t.get_as("/audit", &sup).await;
    let admin_actions: Vec<&str> =
        workspace_trail["items"].as_array().unwrap().iter().map(|e| e["action"].as_str().unwrap()).collect();
    assert!(
        admin_actions.starts_with(&["team_changed", "agent_changed", "agent_changed", "rules_changed"]),
        "{admin_actions:?}"
    );

    // The contact's profile: the identity and this conversation in the history.
    let (s, profile) = t.get(&format!("/contacts/{}", conv["contact_id"].as_str().unwrap())).await;
    assert_eq!(s, 200, "{profile}");
    assert_eq!(profile["contact"]["identities"][0]["value"], from.as_str());
    assert_eq!(profile["conversations"][0]["status"], "resolved");
}

#[tokio::test]
async fn split_and_merge_conversations_over_http() {
    let t = spawn_stack().await;
    let sup = t.token_as("sue", Role::Supervisor);
    let from = random_number();
    for text in ["my parcel never arrived", "order 1042", "also: how do I change my address?"] {
        assert_eq!(t.text_in(&new_sid(), &from, text).await.status(), 200);
    }
    let conv = conversation_of(&t, &from).await;
    let id = conv["id"].as_str().unwrap().to_owned();
    let msgs = eventually("three messages stored", || async {
        let m = t.messages(&id).await;
        (m.len() == 3).then_some(m)
    })
    .await;

    // The third message is a new topic: split it off.
    let split = json!({ "from_message": msgs[2]["id"] });
    let (s, out) = t.send_as("POST", &format!("/conversations/{id}/split"), &sup, Some(split.clone())).await;
    assert_eq!(s, 201, "{out}");
    let new = out["conversation"]["id"].as_str().unwrap().to_owned();
    assert_eq!(t.messages(&id).await.len(), 2);
    let moved = t.messages(&new).await;
    assert_eq!(moved.len(), 1);
    assert_eq!(moved[0]["text"], "also: how do I change my address?");
    assert_eq!(moved[0]["conversation_id"], new.as_str());
    let (s, again) = t.send_as("POST", &format!("/conversations/{id}/split"), &sup, Some(split)).await;
    assert_eq!((s, again["conversation"]["id"].as_str()), (200, Some(new.as_str())));

    // The customer's next message continues the new thread.
    assert_eq!(t.text_in(&new_sid(), &from, "it's 12 Elm Street").await.status(), 200);
    eventually("the follow-up lands in the split-off conversation", || async {
        (t.messages(&new).await.len() == 2).then_some(())
    })
    .await;
    assert_eq!(t.messages(&id).await.len(), 2);

    // Merged back: one thread with every message, in order; the old one points at it.
    let merge = json!({ "into": new });
    let (s, out) = t.send_as("POST", &format!("/conversations/{id}/merge"), &sup, Some(merge)).await;
    assert_eq!(s, 200, "{out}");
    assert_eq!(out["moved"], 2);
    let all: Vec<String> =
        t.messages(&new).await.iter().map(|m| m["text"].as_str().unwrap_or_default().to_owned()).collect();
    assert_eq!(
        all,
        ["my parcel never arrived", "order 1042", "also: how do I change my address?", "it's 12 Elm Street"]
    );
    let (_, old) = t.get(&format!("/conversations/{id}")).await;
    assert_eq!(old["conversation"]["merged_into"], new.as_str());
    let (_, trail) = t.get(&format!("/audit?conversation={new}")).await;
    let actions: Vec<&str> = trail["items"].as_array().unwrap().iter().map(|e| e["action"].as_str().unwrap()).collect();
    assert!(actions.contains(&"split_from") && actions.contains(&"merged_from"), "{actions:?}");
}

#[tokio::test]
async fn a_snoozed_conversation_wakes_by_itself_through_step_functions() {
    let t = spawn_stack().await;
    let sup = t.token_as("sue", Role::Supervisor);
    let from = random_number();
    assert_eq!(t.text_in(&new_sid(), &from, "remind me about this on Monday").await.status(), 200);
    let id = conversation_of(&t, &from).await["id"].as_str().unwrap().to_owned();
    let mut sock = connect_socket(&t.stack.ws_url, &sup, false).await.expect("sue connects");

    // Snoozed for three seconds, then snoozed again for four: only the second timer wakes it.
    let first = time::OffsetDateTime::now_utc() + time::Duration::seconds(3);
    let second = first + time::Duration::seconds(1);
    for until in [first, second] {
        let until = until.format(&time::format_description::well_known::Rfc3339).unwrap();
        let body = json!({ "status": "snoozed", "snoozed_until": until });
        let (s, b) = t.send_as("PATCH", &format!("/conversations/{id}"), &sup, Some(body)).await;
        assert_eq!(s, 200, "{b}");
        assert_eq!(b["conversation"]["status"], "snoozed");
    }
    let woke = sock.expect("the wake-up", |f| f["event"]["change"] == "reopened").await;
    assert_eq!(woke["event"]["actor"], "system");
    let (_, c) = t.get(&format!("/conversations/{id}")).await;
    assert_eq!(c["conversation"]["status"], "open");
    assert!(c["conversation"]["snoozed_until"].is_null());
    assert!(
        time::OffsetDateTime::now_utc() >= second,
        "not before its time: woken at {:?}",
        time::OffsetDateTime::now_utc()
    );
    let (_, trail) = t.get(&format!("/audit?conversation={id}")).await;
    let actions: Vec<&str> = trail["items"].as_array().unwrap().iter().map(|e| e["action"].as_str().unwrap()).collect();
    assert_eq!(actions.iter().filter(|a| **a == "reopened").count(), 1, "{actions:?}");
}

/// Service levels end to end, on moto's Step Functions running the template's state machine: a
/// message nobody answers is warned about, then breached — pushed to the supervisor's socket and
/// escalated by the policy (priority raised, re-routed to the agent who is online) — while a
/// message answered before its warning never warns.
#[tokio::test]
async fn an_unanswered_customer_is_warned_about_then_breached_and_escalated_an_answered_one_is_not() {
    let t = spawn_stack().await;
    let sup = t.token_as("sue", Role::Supervisor);
    let policy = json!({
        "rules": [{ "channel": "sms", "first_response_secs": 6, "next_response_secs": 6, "resolution_secs": 3600 }],
        "counting": "calendar",
        "warn_at_percent": 50,
        "on_breach": [{ "action": "raise_priority" }, { "action": "reroute" }],
    });
    let (s, b) = t.send_as("PUT", "/sla-policy", &sup, Some(policy)).await;
    assert_eq!(s, 200, "{b}");
    let (s, b) = t.get("/sla-policy").await;
    assert_eq!((s, &b["policy"]["warn_at_percent"]), (200, &json!(50)));
    let mut sue = connect_socket(&t.stack.ws_url, &sup, false).await.expect("sue connects");

    // Answered within a second: its clock stops, no warning ever comes.
    let answered = random_number();
    assert_eq!(t.text_in(&new_sid(), &answered, "quick question").await.status(), 200);
    let quick = conversation_of(&t, &answered).await["id"].as_str().unwrap().to_owned();
    let (s, b) = t.reply(&quick, "sla-quick", "Sure!").await;
    assert_eq!(s, 202, "{b}");

    // Nobody answers this one.
    let waiting = random_number();
    let sent_at = time::OffsetDateTime::now_utc();
    assert_eq!(t.text_in(&new_sid(), &waiting, "hello? anyone?").await.status(), 200);
    let id = conversation_of(&t, &waiting).await["id"].as_str().unwrap().to_owned();
    let (_, c) = t.get(&format!("/conversations/{id}")).await;
    let clock = &c["conversation"]["sla"]["response"];
    assert_eq!(clock["kind"], "first_response", "{c}");
    assert_eq!(clock["target_secs"], 6);

    let warning = sue
        .expect("the SLA warning", |f| {
            f["event"]["type"] == "sla_warning" && f["event"]["conversation_id"] == id.as_str()
        })
        .await;
    assert_eq!(warning["event"]["clock"], "first_response");
    let breach = sue
        .expect("the SLA breach", |f| {
            f["event"]["type"] == "sla_breached" && f["event"]["conversation_id"] == id.as_str()
        })
        .await;
    // Not before its due time: the clock's own (it starts at the message's time, which a provider's
    // whole-second timestamp may put a moment before this test's `sent_at`).
    let due =
        time::OffsetDateTime::parse(clock["due_at"].as_str().unwrap(), &time::format_description::well_known::Rfc3339)
            .expect("the clock's due time");
    assert!(time::OffsetDateTime::now_utc() >= due, "not before its due time");
    assert!(due >= sent_at + time::Duration::seconds(5), "due about 6 s after the message: {due}");
    assert_eq!(breach["event"]["actions"], json!([{ "action": "raise_priority" }, { "action": "reroute" }]));

    let (_, c) = t.get(&format!("/conversations/{id}")).await;
    assert_eq!(c["conversation"]["priority"], "high", "escalated: {c}");
    assert_eq!(c["conversation"]["sla"]["breaches"], 1);
    assert_eq!(c["conversation"]["sla"]["response"]["breached"], true);
    let (_, trail) = t.get(&format!("/audit?conversation={id}")).await;
    let actions: Vec<&str> = trail["items"].as_array().unwrap().iter().map(|e| e["action"].as_str().unwrap()).collect();
    assert!(actions.contains(&"sla_warning") && actions.contains(&"sla_breached"), "{actions:?}");

    // The answered conversation never warned, and its first response is on record.
    let (_, q) = t.get(&format!("/conversations/{quick}")).await;
    assert!(q["conversation"]["sla"]["first_response_at"].is_string(), "{q}");
    assert!(q["conversation"]["sla"]["response"]["stopped_at"].is_string());
    assert_ne!(q["conversation"]["sla"]["response"]["warned"], true, "never warned");
    let frames = sue.drain(Duration::from_secs(1)).await;
    assert!(
        !frames.iter().any(|f| f["event"]["type"] == "sla_warning" && f["event"]["conversation_id"] == quick.as_str()),
        "no warning for the answered conversation: {frames:#?}"
    );
}

/// An agent who goes away and stays away past the policy's grace period has their waiting
/// customers handed to the agent who is online (through the away check's Step Functions timer).
#[tokio::test]
async fn an_agent_who_stays_away_has_their_waiting_customers_rerouted_to_an_online_agent() {
    let t = spawn_stack().await;
    let sup = t.token_as("sue", Role::Supervisor);
    let policy = json!({ "counting": "calendar", "reroute_when_away_secs": 2 });
    let (s, b) = t.send_as("PUT", "/sla-policy", &sup, Some(policy)).await;
    assert_eq!(s, 200, "{b}");
    let mut ann = connect_socket(&t.stack.ws_url, &t.token_as("ann", Role::Agent), false).await.expect("ann");
    ann.act(json!({ "action": "presence", "status": "online" })).await;
    let from = random_number();
    assert_eq!(t.text_in(&new_sid(), &from, "my order is late").await.status(), 200);
    let id = conversation_of(&t, &from).await["id"].as_str().unwrap().to_owned();
    eventually("ann owns it", || async {
        let (_, c) = t.get(&format!("/conversations/{id}")).await;
        (c["conversation"]["assignee"] == "ann").then_some(())
    })
    .await;
    let mut bob = connect_socket(&t.stack.ws_url, &t.token_as("bob", Role::Agent), false).await.expect("bob");
    bob.act(json!({ "action": "presence", "status": "online" })).await;
    let left = time::OffsetDateTime::now_utc();
    ann.act(json!({ "action": "presence", "status": "away" })).await;
    bob.expect("the conversation handed over", |f| {
        f["event"]["conversation_id"] == id.as_str() && f["event"]["assignee"] == "bob"
    })
    .await;
    assert!(time::OffsetDateTime::now_utc() >= left + time::Duration::seconds(2), "not before the grace period");
    let (_, trail) = t.get(&format!("/audit?conversation={id}")).await;
    let actions: Vec<&str> = trail["items"].as_array().unwrap().iter().map(|e| e["action"].as_str().unwrap()).collect();
    assert!(actions.contains(&"rerouted_away"), "{actions:?}");
}

/// Counted in business hours, a message that arrives while the team is closed is due a target's
/// worth of open time after the next opening, not after its arrival; and "breaching soon" lists it.
#[tokio::test]
async fn after_hours_the_clock_starts_counting_at_opening_time_and_breaching_soon_lists_it() {
    let t = spawn_stack().await;
    let sup = t.token_as("sue", Role::Supervisor);
    let now = time::OffsetDateTime::now_utc();
    // Open one hour a day, starting at least an hour from now (never across midnight).
    let start = match now.hour() + 2 {
        h if h <= 22 => h,
        h => h - 23,
    };
    let span = json!([{ "open": format!("{start:02}:00"), "close": format!("{:02}:00", start + 1) }]);
    let days = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"];
    let weekly: serde_json::Map<String, serde_json::Value> =
        days.iter().map(|d| ((*d).to_owned(), span.clone())).collect();
    let (s, b) = t
        .send_as("PUT", "/routing-rules", &sup, Some(json!({ "hours": { "time_zone": "UTC", "weekly": weekly } })))
        .await;
    assert_eq!(s, 200, "{b}");
    let policy = json!({ "rules": [{ "channel": "sms", "first_response_secs": 600 }], "counting": "business_hours" });
    let (s, b) = t.send_as("PUT", "/sla-policy", &sup, Some(policy)).await;
    assert_eq!(s, 200, "{b}");
    let from = random_number();
    assert_eq!(t.text_in(&new_sid(), &from, "are you there?").await.status(), 200);
    let id = conversation_of(&t, &from).await["id"].as_str().unwrap().to_owned();
    let (_, c) = t.get(&format!("/conversations/{id}")).await;
    let due = time::OffsetDateTime::parse(
        c["conversation"]["sla"]["response"]["due_at"].as_str().expect("a running clock"),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    let today = now.replace_time(time::Time::from_hms(start, 0, 0).unwrap());
    let opening = if today > now { today } else { today + time::Duration::days(1) };
    assert_eq!(due, opening + time::Duration::minutes(10), "ten open minutes after opening");
    let (s, list) = t.get_as("/conversations?sort=breaching", &sup).await;
    assert_eq!(s, 200, "{list}");
    assert_eq!(list["items"][0]["id"], id.as_str());
}
