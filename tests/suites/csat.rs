//! Customer satisfaction end to end on the local stack: resolving an SMS conversation sends the
//! survey question through fake Twilio, the customer's "4" answers it without reopening anything,
//! and the rating reaches an outbound webhook (verified with the Standard Webhooks library) and
//! analytics; an email survey's rating link records once, and a forged link is refused; the NPS
//! run asks the right segment once and the answer lands on the contact.

use domain::Role;
use serde_json::json;
use switchboard_e2e::*;
use switchboard_local::receiver::WebhookReceiver;

fn root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

async fn resolve(t: &TestStack, id: &str) {
    let admin = t.token_as("root", Role::Admin);
    let (s, b) =
        t.send_as("PATCH", &format!("/conversations/{id}"), &admin, Some(json!({ "status": "resolved" }))).await;
    assert_eq!(s, 200, "{b}");
}

async fn conversation(t: &TestStack, id: &str) -> serde_json::Value {
    let (s, c) = t.get(&format!("/conversations/{id}")).await;
    assert_eq!(s, 200, "{c}");
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn resolving_an_sms_conversation_asks_and_a_4_comes_back_as_the_rating() {
    let t = spawn_stack().await;
    let receiver = WebhookReceiver::start(&root()).await.unwrap();
    let admin = t.token_as("root", Role::Admin);
    let hook = json!({ "url": format!("{}/in", receiver.base_url), "events": ["csat.received"] });
    let (s, created) = t.send_as("POST", "/webhook-endpoints", &admin, Some(hook)).await;
    assert_eq!(s, 201, "{created}");
    receiver.set(&[created["secret"].as_str().unwrap()], 0).await.unwrap();

    let from = random_number();
    assert_eq!(t.text_in(&new_sid(), &from, "My parcel never came").await.status(), 200);
    let id = eventually("the conversation", || async {
        t.conversations().await.first().map(|c| c["id"].as_str().unwrap().to_owned())
    })
    .await;
    resolve(&t, &id).await;
    let question = eventually("the survey question at Twilio", || async {
        t.twilio.received().into_iter().find(|r| r.get("To") == Some(from.as_str()))
    })
    .await;
    assert_eq!(question.get("Body"), Some(domain::csat::DEFAULT_QUESTION));

    assert_eq!(t.text_in(&new_sid(), &from, "4").await.status(), 200);
    let rated = eventually("the rating on the conversation", || async {
        let c = conversation(&t, &id).await;
        let score = c["conversation"]["csat"]["score"].as_u64().or(c["csat"]["score"].as_u64());
        score.map(|s| (s, c))
    })
    .await;
    assert_eq!(rated.0, 4);
    let status = rated.1["conversation"]["status"].as_str().or(rated.1["status"].as_str()).unwrap().to_owned();
    assert_eq!(status, "resolved", "the answer does not reopen it");
    assert_eq!(t.conversations().await.len(), 0, "no open conversation was started by the answer");

    let delivered = eventually("csat.received at the webhook", || async {
        receiver.received().await.unwrap().into_iter().find(|d| d["type"] == "csat.received")
    })
    .await;
    assert_eq!(delivered["verified"], true);
    assert_eq!(delivered["payload"]["data"]["score"], 4);
    assert_eq!(delivered["payload"]["data"]["conversation_id"], id.as_str());
    // Counted in analytics: one resolution on SMS, one rating of 4.
    let sup = t.token_as("sue", Role::Supervisor);
    let row = eventually("the rating in analytics", || async {
        let (s, a) = t.get_as("/analytics", &sup).await;
        assert_eq!(s, 200, "{a}");
        a["rows"].as_array().and_then(|r| r.iter().find(|r| r["key"] == "sms" && r["csat"][3] == 1).cloned())
    })
    .await;
    assert_eq!(row["counts"]["resolved"], 1, "{row}");
    assert_eq!(row["resolution_seconds"]["count"], 1);
    assert_eq!(row["counts"]["messages_in"], 2, "the question's answer is an inbound message too: {row}");
    assert_eq!(row["csat_score"], 1.0);
    // Asked once: only one question went to the customer.
    let questions = t.twilio.received().into_iter().filter(|r| r.get("To") == Some(from.as_str())).count();
    assert_eq!(questions, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_email_rating_link_records_once_and_a_forged_one_is_refused() {
    let t = spawn_stack().await;
    let customer = format!("ana.{}@example.com", ulid::Ulid::new().to_string().to_lowercase());
    let mail = format!(
        "From: Ana <{customer}>\r\nTo: {to}\r\nSubject: Invoice\r\nMessage-ID: <i1.{customer}>\r\n\r\nWhere is my invoice?\r\n",
        to = t.email_address
    );
    t.email_in(&mail, &t.email_address).await;
    let id = eventually("the conversation", || async {
        t.conversations().await.first().map(|c| c["id"].as_str().unwrap().to_owned())
    })
    .await;
    resolve(&t, &id).await;
    let raw = eventually("the survey email", || async { t.emails_sent_to(&customer).await.into_iter().next() }).await;
    let parsed = mail_parser::MessageParser::default().parse(raw.as_bytes()).expect("MIME");
    let text = parsed.body_text(0).expect("a text part").into_owned();
    assert!(text.starts_with(domain::csat::DEFAULT_QUESTION), "{text}");
    let links: Vec<String> =
        text.lines().filter_map(|l| l.split_once(": ").map(|(_, u)| u.trim().to_owned())).collect();
    assert_eq!(links.len(), 5, "{text}");
    let path = |link: &str| link.split_once("/csat/").map(|(_, token)| format!("/csat/{token}")).unwrap();
    let http = reqwest::Client::new();

    // Opening the link (a mail scanner would) records nothing: the page asks to confirm.
    let page = http.get(t.url(&path(&links[4]))).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(html.contains("★★★★★") && html.contains("<form method=\"post\""), "{html}");
    assert!(!conversation(&t, &id).await.to_string().contains("\"score\""), "nothing recorded by a GET");

    // Confirmed with a comment: recorded.
    let sent = http.post(t.url(&path(&links[4]))).form(&[("comment", "Quick and kind")]).send().await.unwrap();
    assert_eq!(sent.status(), 200);
    assert!(sent.text().await.unwrap().contains("5 out of 5"));
    let c = conversation(&t, &id).await;
    let survey = if c["csat"].is_object() { c["csat"].clone() } else { c["conversation"]["csat"].clone() };
    assert_eq!((survey["score"].as_u64(), survey["comment"].as_str()), (Some(5), Some("Quick and kind")), "{c}");

    // Another link of the same message later: the first score stands.
    let again = http.post(t.url(&path(&links[1]))).send().await.unwrap();
    assert!(again.text().await.unwrap().contains("already rated this conversation 5"));

    // A forged link (the score changed, or another conversation) is refused.
    let forged = path(&links[4]).replacen(".5.", ".1.", 1);
    let res = http.post(t.url(&forged)).send().await.unwrap();
    assert_eq!(res.status(), 400);
    let res = http.get(t.url("/csat/v1.x.y.3.1.nope")).send().await.unwrap();
    assert_eq!(res.status(), 400);
}

/// The score a conversation's survey got, once it has one.
async fn rating(t: &TestStack, id: &str, what: &str) -> u64 {
    eventually(what, || async { conversation(t, id).await["conversation"]["csat"]["score"].as_u64() }).await
}

fn wamid() -> String {
    format!("wamid.{}", ulid::Ulid::new())
}

/// The conversation of a WhatsApp customer (by their digits).
async fn whatsapp_conversation(t: &TestStack, digits: &str) -> String {
    eventually("the WhatsApp conversation", || async {
        t.conversations().await.into_iter().find_map(|c| {
            let ours = c["last_inbound"]["contact_address"].as_str()?.trim_start_matches('+') == digits;
            ours.then(|| c["id"].as_str().unwrap().to_owned())
        })
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn whatsapp_asks_with_a_list_inside_the_window_and_the_survey_template_outside_it() {
    let t = spawn_stack().await;
    // Inside the window: a five-row list; the customer's tap comes back as the rating.
    let digits = random_number().trim_start_matches('+').to_owned();
    assert_eq!(t.whatsapp_in(&t.whatsapp_text(&wamid(), &digits, "Ana", "Where is my order?")).await.status(), 200);
    let id = whatsapp_conversation(&t, &digits).await;
    resolve(&t, &id).await;
    let list = eventually("the survey list at WhatsApp", || async {
        t.whatsapp.received().into_iter().find(|r| r.body["to"] == digits.as_str())
    })
    .await;
    assert_eq!(list.body["type"], "interactive", "{}", list.body);
    let rows = list.body["interactive"]["action"]["sections"][0]["rows"].as_array().unwrap().clone();
    assert_eq!(rows.len(), 5);
    let mut tap = t.whatsapp_text(&wamid(), &digits, "Ana", "");
    tap["entry"][0]["changes"][0]["value"]["messages"][0]["type"] = "interactive".into();
    tap["entry"][0]["changes"][0]["value"]["messages"][0]["interactive"] =
        json!({ "type": "list_reply", "list_reply": rows[1].clone() });
    assert_eq!(t.whatsapp_in(&tap).await.status(), 200);
    assert_eq!(rating(&t, &id, "the tapped rating").await, 4, "the second row is four stars");

    // Outside the window: nothing may go out free-form; the workspace's approved survey template does.
    let admin = t.token_as("ada", Role::Admin);
    let template = json!({ "category": "utility", "body": "How did we do? Tap a rating below.", "status": "approved" });
    let (s, b) = t.send_as("PUT", "/whatsapp/templates/csat_survey/en", &admin, Some(template)).await;
    assert_eq!(s, 201, "{b}");
    let (s, rules) = t.get_as("/routing-rules", &admin).await;
    assert_eq!(s, 200, "{rules}");
    let mut rules = rules["rules"].clone();
    rules["csat"] = json!({ "enabled": true, "whatsapp_template": { "name": "csat_survey", "language": "en" } });
    let (s, b) = t.send_as("PUT", "/routing-rules", &admin, Some(rules)).await;
    assert_eq!(s, 200, "{b}");
    let late = random_number().trim_start_matches('+').to_owned();
    let mut old = t.whatsapp_text(&wamid(), &late, "Pablo", "Is my refund done?");
    let two_days_ago = time::OffsetDateTime::now_utc().unix_timestamp() - 2 * 86_400;
    old["entry"][0]["changes"][0]["value"]["messages"][0]["timestamp"] = two_days_ago.to_string().into();
    assert_eq!(t.whatsapp_in(&old).await.status(), 200);
    let late_id = whatsapp_conversation(&t, &late).await;
    resolve(&t, &late_id).await;
    let sent = eventually("the survey template at WhatsApp", || async {
        t.whatsapp.received().into_iter().find(|r| r.body["to"] == late.as_str())
    })
    .await;
    assert_eq!(sent.body["type"], "template", "{}", sent.body);
    assert_eq!(sent.body["template"], json!({ "name": "csat_survey", "language": { "code": "en" } }));
    let msgs = t.messages(&late_id).await;
    let question = msgs.iter().find(|m| m["metadata"]["auto_reply"] == "csat").unwrap();
    assert_eq!(question["metadata"]["whatsapp_category"], "utility", "priced as a utility template");
    // The template's quick-reply button answers.
    let mut button = t.whatsapp_text(&wamid(), &late, "Pablo", "");
    button["entry"][0]["changes"][0]["value"]["messages"][0]["type"] = "button".into();
    button["entry"][0]["changes"][0]["value"]["messages"][0]["button"] = json!({ "payload": "csat-5", "text": "5" });
    assert_eq!(t.whatsapp_in(&button).await.status(), 200);
    assert_eq!(rating(&t, &late_id, "the template's rating").await, 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_nps_run_asks_the_right_segment_once_and_keeps_the_answer_on_the_contact() {
    let t = spawn_stack().await;
    let sup = t.token_as("sue", Role::Supervisor);
    let (s, rules) = t.get_as("/routing-rules", &sup).await;
    assert_eq!(s, 200, "{rules}");
    let mut rules = rules["rules"].clone();
    rules["csat"] = json!({ "enabled": false });
    rules["nps"] = json!({ "enabled": true, "cadence_days": 90, "resolved_within_days": 30 });
    let (s, b) = t.send_as("PUT", "/routing-rules", &sup, Some(rules)).await;
    assert_eq!(s, 200, "{b}");

    // Two customers: one conversation resolved (in the segment), one still open (not asked).
    let (done, busy) = (random_number(), random_number());
    for (who, text) in [(&done, "Thanks, all good"), (&busy, "Still waiting for my parcel")] {
        assert_eq!(t.text_in(&new_sid(), who, text).await.status(), 200);
    }
    let convs = eventually("both conversations", || async {
        let c = t.conversations().await;
        (c.len() == 2).then_some(c)
    })
    .await;
    let contact_of = |who: &str| {
        convs
            .iter()
            .find(|c| c["last_inbound"]["contact_address"] == who)
            .map(|c| (c["id"].as_str().unwrap().to_owned(), c["contact_id"].as_str().unwrap().to_owned()))
            .unwrap()
    };
    let (done_conv, done_contact) = contact_of(&done);
    resolve(&t, &done_conv).await;

    let ran = t.invoke("nps-run", &json!({})).await;
    assert_eq!(ran[t.workspace.as_str()], json!({ "segment": 1, "asked": 1 }), "{ran}");
    let again = t.invoke("nps-run", &json!({})).await;
    assert_eq!(again[t.workspace.as_str()]["asked"], 0, "once per cadence: {again}");
    let question = eventually("the NPS question at Twilio", || async {
        t.twilio.received().into_iter().find(|r| r.get("To") == Some(done.as_str()))
    })
    .await;
    assert_eq!(question.get("Body"), Some(domain::nps::DEFAULT_QUESTION));
    assert!(
        t.twilio.received().iter().all(|r| r.get("To") != Some(busy.as_str())),
        "the open conversation is left alone"
    );

    assert_eq!(t.text_in(&new_sid(), &done, "9").await.status(), 200);
    let nps = eventually("the answer on the contact", || async {
        let (s, c) = t.get(&format!("/contacts/{done_contact}")).await;
        assert_eq!(s, 200, "{c}");
        let nps = if c["nps"].is_object() { c["nps"].clone() } else { c["contact"]["nps"].clone() };
        nps["score"].as_u64().map(|_| nps)
    })
    .await;
    assert_eq!(nps["score"], 9);
    assert_eq!(nps["channel"], "sms");
}
