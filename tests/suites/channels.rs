//! Every channel into one inbox, on the local stack: each provider's signed webhook → inbound queue
//! → processor → DynamoDB → agent API → reply → sender → the fake provider, which receives exactly
//! the request its API documents; statuses move delivery forward only; forged requests store
//! nothing.

use serde_json::json;
use switchboard_e2e::*;

async fn one_conversation(s: &TestStack) -> serde_json::Value {
    eventually("the conversation to appear", || async {
        let c = s.conversations().await;
        (c.len() == 1).then(|| c[0].clone())
    })
    .await
}

fn wamid() -> String {
    format!("wamid.{}", ulid::Ulid::new())
}

async fn message_status(s: &TestStack, conversation: &str, message: &str) -> (String, serde_json::Value) {
    let m = s.messages(conversation).await.into_iter().find(|m| m["id"] == message).expect("the message");
    (m["status"].as_str().unwrap_or_default().to_owned(), m)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whatsapp_round_trip_with_statuses_forward_only() {
    let s = spawn_stack().await;
    let digits = random_number().trim_start_matches('+').to_owned();

    // Meta's subscription handshake: our verify token gets the challenge back, a guess does not.
    let hs = |token: &str| {
        s.url(&format!("/webhooks/whatsapp?hub.mode=subscribe&hub.challenge=8812&hub.verify_token={token}"))
    };
    let res = s.http.get(hs(WHATSAPP_VERIFY_TOKEN)).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.text().await.unwrap(), "8812");
    assert_eq!(s.http.get(hs("guess")).send().await.unwrap().status(), 403);

    // A customer writes on WhatsApp.
    let res = s.whatsapp_in(&s.whatsapp_text(&wamid(), &digits, "Sheena Nelson", "Does it come in blue?")).await;
    assert_eq!(res.status(), 200);
    let conv = one_conversation(&s).await;
    let id = conv["id"].as_str().unwrap().to_owned();
    assert_eq!(conv["last_inbound"]["channel"], "whatsapp");
    assert_eq!(conv["last_inbound"]["contact_address"], format!("+{digits}"));
    let (_, detail) = s.get(&format!("/conversations/{id}")).await;
    assert_eq!(detail["contact"]["name"], "Sheena Nelson");
    assert_eq!(detail["contact"]["identities"][0], json!({ "kind": "phone", "value": format!("+{digits}") }));

    // A photo: the webhook copies it from Meta into the media bucket before enqueueing.
    let mut photo = s.whatsapp_text(&wamid(), &digits, "Sheena Nelson", "");
    let m = &mut photo["entry"][0]["changes"][0]["value"]["messages"][0];
    m["type"] = json!("image");
    m.as_object_mut().unwrap().remove("text");
    m["image"] = json!({ "id": "1003383421387256", "mime_type": "image/jpeg", "sha256": "x", "caption": "This one" });
    assert_eq!(s.whatsapp_in(&photo).await.status(), 200);
    let image = eventually("the photo to arrive", || async {
        s.messages(&id).await.into_iter().find(|m| m["text"] == "This one")
    })
    .await;
    let file = &image["attachments"][0];
    assert!(file["url"].as_str().unwrap().starts_with("s3://"), "{file}");
    assert!(file["url"].as_str().unwrap().ends_with("/whatsapp/1003383421387256"), "{file}");
    assert_eq!(file["size_bytes"], fake_channels::MEDIA_BYTES.len());

    // The agent replies; the Cloud API receives exactly the documented request.
    let (status, reply) = s.reply(&id, "wa-1", "Yes, in navy blue.").await;
    assert_eq!(status, 202, "{reply}");
    let reply_id = reply["message"]["id"].as_str().unwrap().to_owned();
    let sent = eventually("WhatsApp to receive the reply", || async {
        let r = s.whatsapp.received();
        (!r.is_empty()).then_some(r)
    })
    .await;
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].path, format!("/{}/messages", s.whatsapp_number_id));
    assert_eq!(
        sent[0].body,
        json!({ "messaging_product": "whatsapp", "recipient_type": "individual", "to": digits,
                "type": "text", "text": { "preview_url": false, "body": "Yes, in navy blue." } })
    );

    // Meta's signed statuses (sent, delivered) reach the message.
    let delivered = eventually("the reply to be delivered", || async {
        let (status, m) = message_status(&s, &id, &reply_id).await;
        (status == "delivered").then_some(m)
    })
    .await;
    let wamid_out = sent[0].id.clone().unwrap();
    assert_eq!(delivered["provider_message_id"], wamid_out);
    // A late `sent` does not move it back; `read` moves it on.
    s.whatsapp.post_status(&s.whatsapp_number_id, &wamid_out, &digits, "sent").await;
    s.whatsapp.post_status(&s.whatsapp_number_id, &wamid_out, &digits, "read").await;
    eventually("the reply to be read", || async {
        let (status, _) = message_status(&s, &id, &reply_id).await;
        (status == "read").then_some(())
    })
    .await;
    let (_, m) = message_status(&s, &id, &reply_id).await;
    let history: Vec<&str> =
        m["status_history"].as_array().unwrap().iter().map(|e| e["status"].as_str().unwrap()).collect();
    assert_eq!(history, ["queued", "sending", "sent", "delivered", "read"]);

    // Forged and unsigned requests are refused and store nothing.
    let forged = s.whatsapp_text(&wamid(), &digits, "Mallory", "forged");
    let res = s
        .http
        .post(s.url("/webhooks/whatsapp"))
        .header("x-hub-signature-256", format!("sha256={}", "ab".repeat(32)))
        .json(&forged)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    let res = s.http.post(s.url("/webhooks/whatsapp")).json(&forged).send().await.unwrap();
    assert_eq!(res.status(), 403);
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert_eq!(s.messages(&id).await.len(), 3, "nothing stored from forged requests");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whatsapp_free_text_outside_the_window_is_refused_templates_go_out() {
    let s = spawn_stack().await;
    let digits = random_number().trim_start_matches('+').to_owned();
    // The customer's last WhatsApp message was two days ago (Meta delivers late messages too).
    let mut old = s.whatsapp_text(&wamid(), &digits, "Pablo", "Is my refund done?");
    let two_days_ago = time::OffsetDateTime::now_utc().unix_timestamp() - 2 * 86_400;
    old["entry"][0]["changes"][0]["value"]["messages"][0]["timestamp"] = two_days_ago.to_string().into();
    assert_eq!(s.whatsapp_in(&old).await.status(), 200);
    let id = one_conversation(&s).await["id"].as_str().unwrap().to_owned();

    let (status, body) = s.reply(&id, "late-1", "Yes it is").await;
    assert_eq!(status, 422, "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("template"), "{body}");

    let send_template = |key: &'static str| {
        s.http
            .post(s.url(&format!("/conversations/{id}/messages")))
            .bearer_auth(s.token())
            .header("idempotency-key", key)
            .json(&json!({ "template": { "name": "refund_update", "language": "en_US", "parameters": ["Pablo", "R-88"] } }))
            .send()
    };
    // Not in the registry yet: refused before anything is queued.
    let res = send_template("tpl-0").await.unwrap();
    assert_eq!(res.status(), 422);
    assert!(res.text().await.unwrap().contains("GET /whatsapp/templates"));
    // An admin registers it as WhatsApp Manager shows it (approved by Meta).
    let admin = s.token_as("ada", kit::auth::Role::Admin);
    let body =
        json!({ "category": "utility", "body": "Hi {{1}}, your refund {{2}} is on its way.", "status": "approved" });
    let (status, saved) = s.send_as("PUT", "/whatsapp/templates/refund_update/en_US", &admin, Some(body)).await;
    assert_eq!(status, 201, "{saved}");
    let (_, listed) = s.get("/whatsapp/templates?status=approved").await;
    assert_eq!(listed["items"][0]["parameters"], 2);

    let res = send_template("tpl-1").await.unwrap();
    let status = res.status().as_u16();
    let reply: serde_json::Value = res.json().await.unwrap();
    assert_eq!(status, 202, "{reply}");
    assert_eq!(reply["message"]["text"], "Hi Pablo, your refund R-88 is on its way.");
    assert_eq!(reply["message"]["metadata"]["whatsapp_category"], "utility");
    let sent = eventually("WhatsApp to receive the template", || async {
        let r = s.whatsapp.received();
        (!r.is_empty()).then_some(r)
    })
    .await;
    assert_eq!(sent[0].body["type"], "template");
    assert_eq!(
        sent[0].body["template"],
        json!({ "name": "refund_update", "language": { "code": "en_US" },
                "components": [{ "type": "body", "parameters": [{ "type": "text", "text": "Pablo" }, { "type": "text", "text": "R-88" }] }] })
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn telegram_round_trip_and_redelivered_updates_count_once() {
    let s = spawn_stack().await;
    let update = json!({ "update_id": 9001, "message": {
        "message_id": 12, "date": time::OffsetDateTime::now_utc().unix_timestamp(),
        "from": { "id": 55501, "is_bot": false, "first_name": "Ana", "last_name": "Lima", "username": "analima" },
        "chat": { "id": 55501, "type": "private", "first_name": "Ana" },
        "text": "Hello from Telegram" } });
    assert_eq!(s.telegram_in(&update).await.status(), 200);
    assert_eq!(s.telegram_in(&update).await.status(), 200, "Telegram redelivers until it gets a 2xx");
    let conv = one_conversation(&s).await;
    let id = conv["id"].as_str().unwrap().to_owned();
    assert_eq!(conv["last_inbound"]["channel"], "telegram");
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let msgs = s.messages(&id).await;
    assert_eq!(msgs.len(), 1, "one update, one message");
    assert_eq!(msgs[0]["metadata"]["username"], "analima");

    let (status, reply) = s.reply(&id, "tg-1", "Hi Ana!").await;
    assert_eq!(status, 202, "{reply}");
    let reply_id = reply["message"]["id"].as_str().unwrap().to_owned();
    let sent = eventually("Telegram to receive the reply", || async {
        let r = s.telegram.received();
        (!r.is_empty()).then_some(r)
    })
    .await;
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].path, "/sendMessage");
    assert_eq!(sent[0].body, json!({ "chat_id": "55501", "text": "Hi Ana!" }));
    eventually("the reply to be sent", || async {
        let (status, _) = message_status(&s, &id, &reply_id).await;
        (status == "sent").then_some(())
    })
    .await;

    // A wrong secret token is refused; nothing is stored.
    let forged = json!({ "update_id": 9002, "message": { "message_id": 13, "date": 1,
        "from": { "id": 55501, "is_bot": false, "first_name": "Ana" }, "chat": { "id": 55501, "type": "private" },
        "text": "forged" } });
    let res = s
        .http
        .post(s.url(&format!("/webhooks/telegram/{}", s.telegram_bot)))
        .header("x-telegram-bot-api-secret-token", "guess")
        .json(&forged)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    let res = s.http.post(s.url(&format!("/webhooks/telegram/{}", s.telegram_bot))).json(&forged).send().await.unwrap();
    assert_eq!(res.status(), 403);
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(s.messages(&id).await.len(), 2);

    // A photo: the webhook copies the largest size from the Bot API into the media bucket.
    let photo = json!({ "update_id": 9003, "message": { "message_id": 14,
        "date": time::OffsetDateTime::now_utc().unix_timestamp(),
        "from": { "id": 55501, "is_bot": false, "first_name": "Ana" }, "chat": { "id": 55501, "type": "private" },
        "caption": "The label", "photo": [
            { "file_id": "AgACsmall", "file_unique_id": "s1", "width": 90, "height": 90, "file_size": 1000 },
            { "file_id": "AgAClarge", "file_unique_id": "l1", "width": 1280, "height": 960, "file_size": 90000 } ] } });
    assert_eq!(s.telegram_in(&photo).await.status(), 200);
    let m = eventually("the photo to arrive", || async {
        s.messages(&id).await.into_iter().find(|m| m["text"] == "The label")
    })
    .await;
    let file = &m["attachments"][0];
    assert!(file["url"].as_str().unwrap().starts_with("s3://"), "{file}");
    assert!(file["url"].as_str().unwrap().contains("/telegram/"), "{file}");
    assert_eq!(file["size_bytes"], fake_channels::TELEGRAM_FILE_BYTES.len());
}

/// The scenario of issue 3: one person texts by SMS, follows up on WhatsApp from the same number,
/// then emails after an agent links their address: one contact, one conversation, each message
/// showing its channel; the reply defaults to the last channel used (and may name another). Then
/// a second address that wrote first (its own contact) is merged in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_person_on_sms_whatsapp_and_email_is_one_thread() {
    let s = spawn_stack().await;
    let customer = random_number();
    assert_eq!(s.text_in(&new_sid(), &customer, "My parcel is late").await.status(), 200);
    let id = one_conversation(&s).await["id"].as_str().unwrap().to_owned();
    let digits = customer.trim_start_matches('+');
    assert_eq!(
        s.whatsapp_in(&s.whatsapp_text(&wamid(), digits, "Rui", "Here is the tracking number")).await.status(),
        200
    );
    let msgs = eventually("both messages in one conversation", || async {
        let m = s.messages(&id).await;
        (m.len() == 2).then_some(m)
    })
    .await;
    let channels: Vec<&str> = msgs.iter().map(|m| m["channel"].as_str().unwrap()).collect();
    assert_eq!(channels, ["sms", "whatsapp"]);
    assert_eq!(s.conversations().await.len(), 1, "one thread");

    let (status, reply) = s.reply(&id, "r-1", "Thanks, looking now").await;
    assert_eq!(status, 202, "{reply}");
    assert_eq!(reply["message"]["channel"], "whatsapp", "the last channel used");
    eventually("WhatsApp to receive the reply", || async { (!s.whatsapp.received().is_empty()).then_some(()) }).await;

    let res = s
        .http
        .post(s.url(&format!("/conversations/{id}/messages")))
        .bearer_auth(s.token())
        .header("idempotency-key", "r-2")
        .json(&json!({ "text": "Also by SMS", "channel": "sms" }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 202);
    let sms = eventually("Twilio to receive the SMS reply", || async {
        let r = s.twilio.received();
        (!r.is_empty()).then_some(r)
    })
    .await;
    assert_eq!(sms[0].get("To"), Some(customer.as_str()));
    assert_eq!(sms[0].get("From"), Some(s.number.as_str()));

    // The agent links the customer's email address; their email joins the same conversation.
    let contact = s.conversations().await[0]["contact_id"].as_str().unwrap().to_owned();
    let email = format!("rui.{}@example.com", ulid::Ulid::new().to_string().to_lowercase());
    let link = json!({ "kind": "email", "value": email.to_uppercase() });
    let (st, linked) = s.send_as("POST", &format!("/contacts/{contact}/identities"), &s.token(), Some(link)).await;
    assert_eq!(st, 201, "{linked}");
    let mail = format!(
        "From: Rui <{email}>\r\nTo: {to}\r\nSubject: Parcel\r\nMessage-ID: <p1.{email}>\r\n\r\nAny news on the parcel?\r\n",
        to = s.email_address
    );
    s.email_in(&mail, &s.email_address).await;
    let msgs = eventually("the email in the same conversation", || async {
        let m = s.messages(&id).await;
        (m.len() == 5).then_some(m)
    })
    .await;
    let inbound: Vec<&str> =
        msgs.iter().filter(|m| m["direction"] == "inbound").map(|m| m["channel"].as_str().unwrap()).collect();
    assert_eq!(inbound, ["sms", "whatsapp", "email"]);
    assert_eq!(s.conversations().await.len(), 1, "still one thread");
    let (status, reply) = s.reply(&id, "r-3", "It ships today.").await;
    assert_eq!(status, 202, "{reply}");
    assert_eq!(reply["message"]["channel"], "email", "the last channel used");
    eventually("SES to send the email reply", || async { (!s.emails_sent_to(&email).await.is_empty()).then_some(()) })
        .await;

    // An address that wrote first is its own contact: linking it is refused, naming that contact;
    // merging moves its identity and conversation here, once.
    let other = format!("rui.work.{}@example.com", ulid::Ulid::new().to_string().to_lowercase());
    let mail = format!(
        "From: Rui <{other}>\r\nTo: {to}\r\nSubject: Invoice\r\nMessage-ID: <w1.{other}>\r\n\r\nPlease send the invoice.\r\n",
        to = s.email_address
    );
    s.email_in(&mail, &s.email_address).await;
    let second = eventually("a second contact's conversation", || async {
        let all = s.conversations().await;
        all.into_iter().find(|c| c["contact_id"] != contact.as_str())
    })
    .await;
    let duplicate = second["contact_id"].as_str().unwrap().to_owned();
    let link = json!({ "kind": "email", "value": other });
    let (st, refused) = s.send_as("POST", &format!("/contacts/{contact}/identities"), &s.token(), Some(link)).await;
    assert_eq!(st, 409, "{refused}");
    assert!(refused.to_string().contains(&duplicate), "{refused}");
    let merge = json!({ "into": contact });
    let (st, merged) =
        s.send_as("POST", &format!("/contacts/{duplicate}/merge"), &s.token(), Some(merge.clone())).await;
    assert_eq!(st, 200, "{merged}");
    assert_eq!((merged["moved"].clone(), merged["changed"].clone()), (json!(1), json!(true)));
    let (st, again) = s.send_as("POST", &format!("/contacts/{duplicate}/merge"), &s.token(), Some(merge)).await;
    assert_eq!((st, again["changed"].clone()), (200, json!(false)));
    let (st, profile) = s.get(&format!("/contacts/{contact}")).await;
    assert_eq!(st, 200);
    assert_eq!(profile["contact"]["identities"].as_array().unwrap().len(), 3, "{profile}");
    assert_eq!(profile["conversations"].as_array().unwrap().len(), 2, "{profile}");
    let (_, trail) = s.get_as("/audit", &s.token_as("sue", domain::Role::Supervisor)).await;
    assert!(trail.to_string().contains("contacts_merged"), "{trail}");

    // GDPR access: one archive with every message of the contact across channels, behind a link.
    let admin = s.token_as("ada", domain::Role::Admin);
    let (st, export) = s.send_as("POST", &format!("/contacts/{contact}/export"), &admin, None).await;
    assert_eq!(st, 201, "{export}");
    let zipped = s.http.get(export["url"].as_str().unwrap()).send().await.unwrap().bytes().await.unwrap();
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(zipped.to_vec())).expect("the archive is a zip");
    let mut json = String::new();
    std::io::Read::read_to_string(&mut zip.by_name("contact.json").expect("contact.json"), &mut json).unwrap();
    let archive: serde_json::Value = serde_json::from_str(&json).expect("contact.json is JSON");
    assert_eq!(archive["format"], "switchboard.contact-export.v2");
    // The original of every email is in it.
    let originals = archive["conversations"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|c| c["files"].as_array().unwrap().iter())
        .filter(|f| f["content_type"] == "message/rfc822" && f["file"].is_string())
        .count();
    assert_eq!(originals, 2, "both emails' originals");
    let exported: Vec<&serde_json::Value> = archive["conversations"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|c| c["messages"].as_array().unwrap().iter())
        .collect();
    let mut expected = 0;
    for c in profile["conversations"].as_array().unwrap() {
        expected += s.messages(c["id"].as_str().unwrap()).await.len();
    }
    assert_eq!(exported.len(), expected, "every message of the contact");
    assert_eq!(export["messages"], expected);
    let channels: std::collections::BTreeSet<&str> = exported.iter().filter_map(|m| m["channel"].as_str()).collect();
    for ch in ["sms", "whatsapp", "email"] {
        assert!(channels.contains(ch), "{ch} missing from {channels:?}");
    }
    let (st, _) = s.send_as("POST", &format!("/contacts/{contact}/export"), &s.token(), None).await;
    assert_eq!(st, 403, "agents do not export");
}

fn header<'a>(raw: &'a str, name: &str) -> Option<&'a str> {
    let head = raw.split("\r\n\r\n").next().unwrap_or(raw);
    head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn email_round_trip_threads_by_reply_to_and_suppresses_after_a_hard_bounce() {
    let s = spawn_stack().await;
    let customer = format!("ann.{}@example.com", ulid::Ulid::new().to_string().to_lowercase());
    let gmail = std::fs::read_to_string(repo_root().join("events/inbound-email/gmail-reply.eml")).unwrap();
    let first = gmail
        .replace("ann.lee@example.com", &customer)
        .replace("support@acme.example", &s.email_address)
        .replace("CAF=ann.1@mail.gmail.com", &format!("first.{customer}"));
    s.email_in(&first, &s.email_address).await;

    // The customer's words only (the quoted history is cut), on the email channel.
    let conv = one_conversation(&s).await;
    let id = conv["id"].as_str().unwrap().to_owned();
    assert_eq!(conv["last_inbound"]["channel"], "email");
    let msgs = s.messages(&id).await;
    assert_eq!(msgs[0]["text"], "Yes, Thursday afternoon works for me.\n\nThanks,\nAnn");
    assert_eq!(msgs[0]["metadata"]["email_subject"], "Re: Your order 1234");

    // An out-of-office answer is not a customer message.
    let ooo = std::fs::read_to_string(repo_root().join("events/inbound-email/out-of-office.eml"))
        .unwrap()
        .replace("erin@example.com", &customer)
        .replace("support@acme.example", &s.email_address);
    s.email_in(&ooo, &s.email_address).await;

    // The agent replies: SES sends a threaded raw message.
    let (status, reply) = s.reply(&id, "em-1", "Great, we will call you on Thursday.").await;
    assert_eq!(status, 202, "{reply}");
    let reply_id = reply["message"]["id"].as_str().unwrap().to_owned();
    let sent = eventually("SES to send the reply", || async {
        let sent = s.emails_sent_to(&customer).await;
        (!sent.is_empty()).then_some(sent)
    })
    .await;
    assert_eq!(sent.len(), 1);
    let raw = &sent[0];
    assert_eq!(header(raw, "In-Reply-To"), Some(format!("<first.{customer}>").as_str()));
    assert_eq!(header(raw, "Subject"), Some("Re: Your order 1234"));
    let reply_to = header(raw, "Reply-To").unwrap().trim_matches(['<', '>']).to_owned();
    let (local, domain) = s.email_address.split_once('@').unwrap();
    assert_eq!(reply_to, format!("{local}+{}@{domain}", id.to_lowercase()));
    assert!(header(raw, "From").unwrap().contains("Acme Support"));
    let parsed = mail_parser::MessageParser::default().parse(raw.as_bytes()).unwrap();
    assert_eq!(parsed.body_text(0).unwrap().trim(), "Great, we will call you on Thursday.");
    assert!(parsed.body_html(0).is_some(), "an HTML alternative is sent too");
    let (status, m) = eventually("the reply to be sent", || async {
        let (st, m) = message_status(&s, &id, &reply_id).await;
        (st == "sent").then_some((st, m))
    })
    .await;
    assert_eq!(status, "sent");
    let ses_id = m["provider_message_id"].as_str().unwrap().to_owned();

    // The agent resolves; the customer answers to the Reply-To address (no In-Reply-To), not with a
    // rating: the token brings it back into the same, reopened conversation.
    let (st, _) =
        s.send_as("PATCH", &format!("/conversations/{id}"), &s.token(), Some(json!({ "status": "resolved" }))).await;
    assert_eq!(st, 200);
    // Resolving asks the satisfaction survey (by email, with rating links).
    eventually("the survey in the conversation", || async {
        s.messages(&id).await.iter().any(|m| m["metadata"]["auto_reply"] == "csat").then_some(())
    })
    .await;
    let answer = format!(
        "From: Ann <{customer}>\r\nTo: {reply_to}\r\nSubject: Re: Your order 1234\r\nMessage-ID: <second.{customer}>\r\n\r\nThursday 3pm please.\r\n"
    );
    s.email_in(&answer, &reply_to).await;
    eventually("the answer to join the conversation", || async {
        let msgs = s.messages(&id).await;
        (msgs.len() == 4).then_some(())
    })
    .await;
    assert_eq!(s.conversations().await.len(), 1, "no second conversation");

    // SES reports a hard bounce of our reply: it fails, and the address is suppressed.
    let mut bounce: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(repo_root().join("events/ses-events/sns-bounce.json")).unwrap())
            .unwrap();
    let message = std::fs::read_to_string(repo_root().join("events/inbound-email/ses-bounce.json"))
        .unwrap()
        .replace("0100018e1a2b3c4d-aaaa", &ses_id)
        .replace("ann.lee@example.com", &customer)
        .replace("support@acme.example", &s.email_address);
    bounce["Records"][0]["Sns"]["Message"] = json!(message);
    let out = s.invoke("ses-events", &bounce).await;
    assert_eq!(out, json!({ "statuses": 1, "suppressions": 1, "dropped": 0 }));
    let (_, m) = eventually("the bounce to fail the reply", || async {
        let (st, m) = message_status(&s, &id, &reply_id).await;
        (st == "failed").then_some((st, m))
    })
    .await;
    assert_eq!(m["status_history"].as_array().unwrap().last().unwrap()["error_code"], "hard_bounce");
    let (status, refused) = eventually("the suppression to apply", || async {
        let (st, body) = s.reply(&id, &format!("em-{}", ulid::Ulid::new()), "Are you there?").await;
        (st == 422).then_some((st, body))
    })
    .await;
    assert_eq!(status, 422);
    assert!(refused.to_string().contains("suppressed for email"), "{refused}");
}

/// Messenger and Instagram: signed messages in (each its own contact, by page- or
/// Instagram-scoped id), replies out through the Send API as Meta documents it, with delivery and
/// read receipts moving the status forward; a forged request stores nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messenger_and_instagram_round_trip_with_receipts() {
    let s = spawn_stack().await;
    let psid = format!("70{:014}", ulid::Ulid::new().random() % 100_000_000_000_000);
    let igsid = format!("68{:014}", ulid::Ulid::new().random() % 100_000_000_000_000);

    // Forged: nothing is stored.
    let forged = s.meta_text(domain::Channel::Messenger, "m_forged", &psid, "Hello?");
    assert_eq!(s.meta_in_signed(&forged, "not-the-app-secret").await.status(), 403);

    let hi =
        s.meta_text(domain::Channel::Messenger, &format!("m_{}", ulid::Ulid::new()), &psid, "Is my order shipped?");
    assert_eq!(s.meta_in(&hi).await.status(), 200);
    assert_eq!(s.meta_in(&hi).await.status(), 200, "a redelivery");
    let conv = one_conversation(&s).await;
    let id = conv["id"].as_str().unwrap().to_owned();
    assert_eq!(conv["last_inbound"]["channel"], "messenger");
    assert_eq!(s.messages(&id).await.len(), 1, "the redelivery counts once");

    // A photo: Meta's expiring CDN link is copied into the media bucket before enqueueing.
    let mut photo = s.meta_text(domain::Channel::Messenger, &format!("m_{}", ulid::Ulid::new()), &psid, "");
    photo["entry"][0]["messaging"][0]["message"] = json!({
        "mid": format!("m_{}", ulid::Ulid::new()),
        "attachments": [{ "type": "image", "payload": { "url": s.meta.cdn_url("470124_n.jpg") } }]
    });
    assert_eq!(s.meta_in(&photo).await.status(), 200);
    let image = eventually("the photo to arrive", || async {
        s.messages(&id).await.into_iter().find(|m| !m["attachments"].as_array().unwrap().is_empty())
    })
    .await;
    let file = &image["attachments"][0];
    assert!(file["url"].as_str().unwrap().starts_with("s3://"), "{file}");
    assert_eq!(
        (file["content_type"].as_str(), file["size_bytes"].as_u64()),
        (Some("image/jpeg"), Some(fake_channels::MEDIA_BYTES.len() as u64))
    );

    let (status, reply) = s.reply(&id, "fb-1", "It ships today.").await;
    assert_eq!(status, 202, "{reply}");
    let reply_id = reply["message"]["id"].as_str().unwrap().to_owned();
    let sent = eventually("the Send API to receive the reply", || async {
        let r = s.meta.received();
        (!r.is_empty()).then_some(r)
    })
    .await;
    assert_eq!(sent[0].path, format!("/{}/messages", s.messenger_page));
    assert_eq!(
        sent[0].body,
        json!({ "recipient": { "id": psid }, "messaging_type": "RESPONSE", "message": { "text": "It ships today." } })
    );
    // The fake posts a delivery (by mid) and a read watermark: the reply ends read.
    let (st, m) = eventually("the read watermark to apply", || async {
        let (st, m) = message_status(&s, &id, &reply_id).await;
        (st == "read").then_some((st, m))
    })
    .await;
    assert_eq!(st, "read");
    let history: Vec<&str> =
        m["status_history"].as_array().unwrap().iter().map(|e| e["status"].as_str().unwrap()).collect();
    assert!(history.ends_with(&["sent", "delivered", "read"]), "{history:?}");

    // Instagram: its own contact and conversation; the read names the message.
    let dm = s.meta_text(domain::Channel::Instagram, &format!("aWdf{}", ulid::Ulid::new()), &igsid, "Ship to Canada?");
    assert_eq!(s.meta_in(&dm).await.status(), 200);
    let ig = eventually("the Instagram conversation", || async {
        s.conversations().await.into_iter().find(|c| c["last_inbound"]["channel"] == "instagram")
    })
    .await;
    let ig_id = ig["id"].as_str().unwrap().to_owned();
    let (status, reply) = s.reply(&ig_id, "ig-1", "Yes, we do.").await;
    assert_eq!(status, 202, "{reply}");
    let reply_id = reply["message"]["id"].as_str().unwrap().to_owned();
    eventually("the Instagram reply to be read", || async {
        let (st, _) = message_status(&s, &ig_id, &reply_id).await;
        (st == "read").then_some(())
    })
    .await;
    let last = s.meta.received().last().cloned().unwrap();
    assert_eq!(last.path, format!("/{}/messages", s.instagram_account));
    assert_eq!(last.body["recipient"]["id"], igsid.as_str());
}

/// The contact form: a visitor's submission lands as an email-channel message of the contact with
/// that address; the agent's reply goes out by email; a bot filling the honeypot and a flood from
/// one address store nothing more.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_contact_form_is_answered_by_email() {
    let s = spawn_stack().await;
    let visitor = format!("ana.{}@example.com", ulid::Ulid::new().to_string().to_lowercase());
    let path = format!("/webhooks/form/{}", s.workspace);
    let bot = [("email", visitor.as_str()), ("message", "cheap pills"), ("website", "http://spam.example")];
    let res = s.http.post(s.url(&path)).form(&bot).send().await.unwrap();
    assert_eq!(res.status(), 202, "a bot is answered like anyone");
    let form = [
        ("name", "Ana Silva"),
        ("email", visitor.as_str()),
        ("phone", "+14155550123"),
        ("subject", "Order 1234"),
        ("message", "My order arrived damaged."),
        ("website", ""),
    ];
    let res = s.http.post(s.url(&path)).form(&form).send().await.unwrap();
    assert_eq!(res.status(), 202);
    let conv = one_conversation(&s).await;
    let id = conv["id"].as_str().unwrap().to_owned();
    assert_eq!(conv["last_inbound"]["channel"], "email");
    let msgs = s.messages(&id).await;
    assert_eq!(msgs.len(), 1, "the bot's submission stored nothing");
    assert_eq!(msgs[0]["text"], "My order arrived damaged.");
    assert_eq!(msgs[0]["metadata"]["source"], "form");
    assert_eq!(msgs[0]["metadata"]["form_phone"], "+14155550123");

    let (status, reply) = s.reply(&id, "form-1", "Sorry! A replacement is on its way.").await;
    assert_eq!(status, 202, "{reply}");
    let sent = eventually("SES to send the answer", || async {
        let sent = s.emails_sent_to(&visitor).await;
        (!sent.is_empty()).then_some(sent)
    })
    .await;
    assert_eq!(header(&sent[0], "Subject"), Some("Re: Order 1234"));

    // Five an hour from one address (the template's limit), then 429.
    let mut statuses = vec![];
    for i in 0..5 {
        let msg = format!("follow-up {i}");
        let body = json!({ "email": visitor, "message": msg });
        statuses.push(s.http.post(s.url(&path)).json(&body).send().await.unwrap().status().as_u16());
    }
    assert_eq!(statuses, [202, 202, 202, 202, 429]);
    let missing = s.http.post(s.url("/webhooks/form/no-such-workspace")).form(&form).send().await.unwrap();
    assert_eq!(missing.status(), 404);
}

/// Voicemail: a call is answered with a recording; the recording callback (audio into S3) and
/// the transcription callback (in either order, each possibly retried) become one message; the
/// reply goes back by SMS; a forged callback stores nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_voicemail_is_one_message_with_audio_and_transcript() {
    let s = spawn_stack().await;
    let caller = random_number();
    let call = [("CallSid", "CA0001"), ("From", caller.as_str()), ("To", s.number.as_str()), ("CallStatus", "ringing")];
    let call: Vec<(String, String)> = call.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
    let res = s.post_signed("/webhooks/twilio/voice", &call, AUTH_TOKEN).await;
    assert_eq!(res.status(), 200);
    let twiml = res.text().await.unwrap();
    let callback = |name: &str| {
        let start = twiml.find(&format!("{name}=\"")).expect(name) + name.len() + 2;
        let url = &twiml[start..start + twiml[start..].find('"').unwrap()];
        url.replace("&amp;", "&").trim_start_matches(&s.stack.base_url).to_owned()
    };
    let (recording_path, transcription_path) = (callback("recordingStatusCallback"), callback("transcribeCallback"));
    assert!(recording_path.starts_with("/webhooks/twilio/voice/recording?from="), "{recording_path}");

    let rsid = format!("RE{}", ulid::Ulid::new().to_string().to_lowercase());
    let form = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    };
    let transcript = form(&[
        ("AccountSid", ACCOUNT_SID),
        ("CallSid", "CA0001"),
        ("RecordingSid", &rsid),
        ("TranscriptionStatus", "completed"),
        ("TranscriptionText", "Hi, it's about invoice 42, please call me back."),
    ]);
    // A forged transcript is refused.
    assert_eq!(s.post_signed(&transcription_path, &transcript, "not-the-token").await.status(), 403);
    // The transcript first (Twilio gives no order), twice; then the recording.
    for _ in 0..2 {
        assert_eq!(s.post_signed(&transcription_path, &transcript, AUTH_TOKEN).await.status(), 200);
    }
    let recording_url = format!("{}/2010-04-01/Accounts/{ACCOUNT_SID}/Recordings/{rsid}", s.twilio.base_url());
    let recording = form(&[
        ("AccountSid", ACCOUNT_SID),
        ("CallSid", "CA0001"),
        ("RecordingSid", &rsid),
        ("RecordingStatus", "completed"),
        ("RecordingDuration", "9"),
        ("RecordingUrl", &recording_url),
    ]);
    assert_eq!(s.post_signed(&recording_path, &recording, AUTH_TOKEN).await.status(), 200);

    let conv = one_conversation(&s).await;
    let id = conv["id"].as_str().unwrap().to_owned();
    let m = eventually("the voicemail to have its text and audio", || async {
        let msgs = s.messages(&id).await;
        msgs.into_iter().find(|m| m["text"].is_string() && !m["attachments"].as_array().unwrap().is_empty())
    })
    .await;
    assert_eq!(s.messages(&id).await.len(), 1, "one message");
    assert_eq!(m["channel"], "voice");
    assert_eq!(m["text"], "Hi, it's about invoice 42, please call me back.");
    let audio = &m["attachments"][0];
    assert_eq!(audio["content_type"], "audio/mpeg");
    assert_eq!(audio["size_bytes"], fake_twilio::RECORDING_BYTES.len());
    assert!(audio["url"].as_str().unwrap().starts_with("s3://"), "{audio}");
    assert_eq!(m["metadata"]["voicemail_duration_secs"], 9);

    let (status, reply) = s.reply(&id, "vm-1", "Calling you back in 5 minutes.").await;
    assert_eq!(status, 202, "{reply}");
    assert_eq!(reply["message"]["channel"], "sms", "a voicemail is answered by SMS");
    let sent = eventually("Twilio to receive the SMS", || async {
        let r = s.twilio.received();
        (!r.is_empty()).then_some(r)
    })
    .await;
    assert_eq!(sent[0].get("To"), Some(caller.as_str()));
}

/// Starts a web chat visitor: `POST /webchat/{key}/visitors` (optionally renewing a token).
async fn visitor_session(s: &TestStack, body: serde_json::Value) -> (u16, serde_json::Value) {
    let res = s.http.post(s.url(&format!("/webchat/{}/visitors", s.webchat_key))).json(&body).send().await.unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or_default())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn web_chat_round_trip_with_typing_receipts_files_and_the_away_message() {
    let s = spawn_stack().await;
    let visitors = s.stack.visitor_ws_url.clone();

    // Nobody is online: the visitor is told when to expect an answer and asked for an email.
    let (status, session) = visitor_session(&s, json!({})).await;
    assert_eq!(status, 201, "{session}");
    assert_eq!(
        (session["availability"]["state"].as_str(), session["availability"]["ask_for_email"].as_bool()),
        (Some("away"), Some(true))
    );
    let token = session["token"].as_str().unwrap().to_owned();
    let visitor = session["visitor_id"].as_str().unwrap().to_owned();
    let res = s.http.post(s.url("/webchat/wk_nobody_here/visitors")).json(&json!({})).send().await.unwrap();
    assert_eq!(res.status(), 404);

    // Forged tokens, agents' tokens and other widgets never open a visitor socket.
    let agent_token = s.token_as("alice", domain::Role::Agent);
    assert_eq!(connect_visitor(&visitors, &s.webchat_key, &agent_token).await.err(), Some(401));
    assert_eq!(connect_visitor(&visitors, "wk_another_site", &token).await.err(), Some(401));
    let mut widget = connect_visitor(&visitors, &s.webchat_key, &token).await.expect("the visitor connects");

    // Alice comes online; the widget now promises a quick answer.
    let mut alice = connect_socket(&s.stack.ws_url, &agent_token, false).await.expect("alice connects");
    alice.act(json!({ "action": "presence", "status": "online" })).await;
    let (status, again) = visitor_session(&s, json!({ "token": token })).await;
    assert_eq!((status, again["visitor_id"].as_str()), (200, Some(visitor.as_str())), "{again}");
    assert_eq!(again["availability"]["state"], "online");

    // The visitor writes; a resend of the same client id stores nothing twice.
    let hello = json!({ "action": "message", "client_id": "m-1", "text": "Hi! Where is order #1042?" });
    let answer = widget.act(hello.clone()).await;
    assert_eq!(
        (answer["status"].as_str(), answer["availability"]["state"].as_str()),
        (Some("accepted"), Some("online")),
        "{answer}"
    );
    widget.act(hello).await;
    let conv = one_conversation(&s).await;
    let id = conv["id"].as_str().unwrap().to_owned();
    assert_eq!(
        (conv["last_inbound"]["channel"].as_str(), conv["last_inbound"]["contact_address"].as_str()),
        (Some("webchat"), Some(visitor.as_str()))
    );
    alice.expect("the new conversation", is_event("message_created")).await;

    // Typing both ways, and "seen" when Alice opens it.
    widget.act(json!({ "action": "typing", "typing": true })).await;
    let typing = alice.expect("the visitor typing", is_event("contact_typing")).await;
    assert_eq!(
        (typing["event"]["conversation_id"].as_str(), typing["event"]["typing"].as_bool()),
        (Some(id.as_str()), Some(true))
    );
    alice.act(json!({ "action": "typing", "conversation_id": id, "typing": true })).await;
    widget.expect("alice typing", |f| f["type"] == "typing" && f["typing"] == true).await;
    alice.act(json!({ "action": "viewing", "conversation_id": id })).await;
    widget.expect("seen", |f| f["type"] == "seen").await;

    // A file: a presigned PUT straight to the bucket, then a message naming it.
    let upload = widget
        .act(json!({ "action": "upload", "file_name": "receipt.pdf", "content_type": "application/pdf", "size": 9 }))
        .await;
    let put = s
        .http
        .put(upload["url"].as_str().unwrap())
        .header("content-type", "application/pdf")
        .body("%PDF-1.7\n")
        .send()
        .await
        .unwrap();
    assert!(put.status().is_success(), "{:?}", put.text().await);
    let key = upload["key"].as_str().unwrap();
    let sent = widget.act(json!({ "action": "message", "client_id": "m-2", "text": "Here's the receipt", "attachments": [{ "key": key }] })).await;
    assert_eq!(sent["status"], "accepted", "{sent}");
    let stranger = widget.act(json!({ "action": "message", "client_id": "m-3", "attachments": [{ "key": "webchat/x/v_01JDAB0000000000000000000Z/01JDAB0000000000000000000Z/a.pdf" }] })).await;
    assert_eq!(stranger["error"]["code"], "bad_request", "{stranger}");
    let with_file = eventually("the file message", || async {
        s.messages(&id).await.into_iter().find(|m| m["text"] == "Here's the receipt")
    })
    .await;
    assert_eq!(with_file["attachments"][0]["content_type"], "application/pdf");
    assert!(with_file["attachments"][0]["url"].as_str().unwrap().contains(key), "{with_file}");
    let from_visitor = s.messages(&id).await.iter().filter(|m| m["direction"] == "inbound").count();
    assert_eq!(from_visitor, 2, "the resent first message is stored once");

    // Alice answers: pushed to the widget, delivered; the visitor reads it.
    let (status, reply) = s.reply(&id, "webchat-1", "It left our warehouse this morning.").await;
    assert_eq!(status, 202, "{reply}");
    let pushed = widget.expect("the reply", |f| f["type"] == "message").await;
    assert_eq!(
        (pushed["message"]["from"].as_str(), pushed["message"]["text"].as_str()),
        (Some("agent"), Some("It left our warehouse this morning."))
    );
    let reply_id = pushed["message"]["id"].as_str().unwrap().to_owned();
    eventually("delivered", || async { (message_status(&s, &id, &reply_id).await.0 == "delivered").then_some(()) })
        .await;
    widget.act(json!({ "action": "read", "up_to": reply_id })).await;
    eventually("read", || async { (message_status(&s, &id, &reply_id).await.0 == "read").then_some(()) }).await;

    // The visitor leaves an email: linked to their contact (nobody else holds it).
    let email = format!("rui-{}@example.com", ulid::Ulid::new().to_string().to_lowercase());
    widget.act(json!({ "action": "identify", "name": "Rui Costa", "email": email })).await;
    let (_, detail) = s.get(&format!("/conversations/{id}")).await;
    assert!(
        detail["contact"]["identities"].as_array().unwrap().iter().any(|i| i["value"] == email.as_str()),
        "{detail}"
    );

    // Gone: the next reply waits (sent, not delivered), a copy goes to the email they left, and it
    // is in the history on reconnect.
    drop(widget);
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let (status, _) = s.reply(&id, "webchat-2", "Tracking: 1Z999").await;
    assert_eq!(status, 202);
    let later = eventually("the second reply to settle", || async {
        let m = s.messages(&id).await.into_iter().find(|m| m["text"] == "Tracking: 1Z999")?;
        (m["status"] == "sent").then_some(m)
    })
    .await;
    let copy = eventually("the email copy", || async {
        s.emails_sent_to(&email).await.into_iter().find(|m| m.contains("Tracking: 1Z999"))
    })
    .await;
    assert!(copy.contains("Tracking: 1Z999") && copy.contains("Reply-To:"), "{copy}");
    let mut widget = connect_visitor(&visitors, &s.webchat_key, &token).await.expect("the visitor comes back");
    let history = widget.act(json!({ "action": "history" })).await;
    let texts: Vec<&str> = history["messages"].as_array().unwrap().iter().filter_map(|m| m["text"].as_str()).collect();
    assert_eq!(
        texts,
        ["Hi! Where is order #1042?", "Here's the receipt", "It left our warehouse this morning.", "Tracking: 1Z999"],
        "{history}"
    );
    assert_eq!(history["messages"][3]["id"], later["id"]);
    assert!(history["messages"][1]["files"][0].get("url").is_none(), "no bucket URLs for the visitor");
}

/// Trust: an address typed into the contact form, or mail that fails DMARC, is only claimed — it
/// starts its own flagged conversation, suggests a merge with the real customer, and never reaches
/// the customer's thread; the finance role cannot read or send customer messages.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claimed_address_never_reaches_the_customers_thread_and_finance_cannot_read_it() {
    let s = spawn_stack().await;
    let customer = format!("ana.{}@example.com", ulid::Ulid::new().to_string().to_lowercase());
    let mail = format!(
        "From: Ana <{customer}>\r\nTo: {to}\r\nSubject: Order 77\r\nMessage-ID: <a1.{customer}>\r\n\r\nWhere is order 77? Refund to DE89 3704 0044 0532 0130 00, my PIN is 9911.\r\n",
        to = s.email_address
    );
    s.email_in(&mail, &s.email_address).await;
    let real = one_conversation(&s).await;
    let real_id = real["id"].as_str().unwrap().to_owned();

    // Someone types Ana's address into the contact form.
    let path = format!("/webhooks/form/{}", s.workspace);
    let form = [("name", "Ana"), ("email", customer.as_str()), ("message", "Please send the refund to IBAN X.")];
    assert_eq!(s.http.post(s.url(&path)).form(&form).send().await.unwrap().status(), 202);
    // And forges a reply from her address that fails DMARC, answering her thread.
    let forged = format!(
        "From: Ana <{customer}>\r\nTo: {to}\r\nSubject: Re: Order 77\r\nMessage-ID: <f1.{customer}>\r\nIn-Reply-To: <a1.{customer}>\r\n\r\nChange my address to 1 Evil Road.\r\n",
        to = s.email_address
    );
    s.email_in_spoofed(&forged, &s.email_address).await;
    let flagged = eventually("the claimed sender's own conversation", || async {
        let all = s.conversations().await;
        let other = all.into_iter().find(|c| c["id"] != real_id.as_str())?;
        let id = other["id"].as_str()?.to_owned();
        (s.messages(&id).await.len() == 2).then_some(other)
    })
    .await;
    assert!(flagged["tags"].as_array().unwrap().iter().any(|t| t == "unverified-sender"), "{flagged}");
    let real_msgs = s.messages(&real_id).await;
    assert_eq!(real_msgs.len(), 1, "nothing reached the customer's thread: {real_msgs:#?}");
    // Stored masked: the IBAN by the workspace's default policy; the PIN by an agent, on demand.
    assert_eq!(real_msgs[0]["text"], "Where is order 77? Refund to [IBAN ••••3000], my PIN is 9911.");
    let mid = real_msgs[0]["id"].as_str().unwrap();
    let (st, out) = s
        .send_as(
            "POST",
            &format!("/conversations/{real_id}/messages/{mid}/redact"),
            &s.token(),
            Some(json!({ "text": "9911" })),
        )
        .await;
    assert_eq!(st, 200, "{out}");
    assert_eq!(
        s.messages(&real_id).await[0]["text"],
        "Where is order 77? Refund to [IBAN ••••3000], my PIN is [redacted]."
    );
    let flagged_msgs = s.messages(flagged["id"].as_str().unwrap()).await;
    assert!(flagged_msgs.iter().all(|m| m["metadata"]["sender_unverified"] == true));
    assert!(flagged_msgs.iter().any(|m| m["metadata"]["email_auth_failed"] == true));
    // The agent is offered the merge with the real customer.
    let contact = flagged["contact_id"].as_str().unwrap();
    let (st, suggestions) = s.get(&format!("/contacts/{contact}/suggestions")).await;
    assert_eq!(st, 200, "{suggestions}");
    assert_eq!(suggestions["suggestions"][0]["contact"]["id"], real["contact_id"], "{suggestions}");

    // Finance: costs yes, customers' words no.
    let finance = s.token_as("fred", kit::auth::Role::Finance);
    let (st, _) = s.get_as(&format!("/conversations/{real_id}"), &finance).await;
    assert_eq!(st, 403);
    let (st, _) = s.get_as(&format!("/conversations/{real_id}/messages"), &finance).await;
    assert_eq!(st, 403);
    let (st, _) =
        s.send_as("POST", &format!("/conversations/{real_id}/messages"), &finance, Some(json!({ "text": "hi" }))).await;
    assert_eq!(st, 403);
    let (st, _) = s
        .send_as("POST", "/finance/preview", &finance, Some(json!({ "conversation_id": real_id, "text": "hi" })))
        .await;
    assert_eq!(st, 403);
}

/// A workspace connects its own Telegram bot with its token: the token and a generated webhook
/// secret go into the workspace's own secret (moto's Secrets Manager), Telegram is told where to
/// post and with which secret, updates verify with that bot's secret only, replies go out as that
/// bot, and disconnecting unregisters the webhook and deletes the secret.
#[tokio::test]
async fn a_workspace_connects_its_own_telegram_bot() {
    let s = spawn_stack().await;
    let bot = format!("71{:08}", ulid::Ulid::new().random() % 100_000_000);
    let token = format!("{bot}:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw");
    s.telegram.add_bot(&token);
    let admin = s.token_as("ada", domain::Role::Admin);
    let path = format!("/channels/telegram/{bot}");

    // A token of another bot, or for an agent: refused.
    let (status, body) = s
        .send_as("PUT", &path, &admin, Some(json!({ "bot_token": "7099999999:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw" })))
        .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(s.send_as("PUT", &path, &s.token(), Some(json!({ "bot_token": token }))).await.0, 403);

    let (status, body) = s.send_as("PUT", &path, &admin, Some(json!({ "bot_token": token }))).await;
    assert_eq!(status, 201, "{body}");
    assert!(!body.to_string().contains("AAHdqTcv"), "the token is never answered: {body}");
    let (url, secret) = s.telegram.webhook(&bot).expect("setWebhook was called");
    assert_eq!(url, s.url(&format!("/webhooks/telegram/{bot}")));
    assert_eq!(secret.len(), 43);
    // Kept in the workspace's own secret, named under the stack's prefix.
    let sm = aws_sdk_secretsmanager::Client::new(&s.aws);
    let name = format!("{}/credentials/telegram/{bot}", s.stack.provisioned.stack);
    let stored = sm.get_secret_value().secret_id(&name).send().await.expect("the bot's secret");
    let stored: serde_json::Value = serde_json::from_str(stored.secret_string().unwrap()).unwrap();
    assert_eq!(
        (stored["bot_token"].as_str(), stored["secret_token"].as_str()),
        (Some(token.as_str()), Some(secret.as_str()))
    );
    // Connecting again: the same secret, registered again.
    assert_eq!(s.send_as("PUT", &path, &admin, Some(json!({ "bot_token": token }))).await.0, 200);
    assert_eq!(s.telegram.webhook(&bot).unwrap().1, secret);
    let audit = s.get_as("/audit", &admin).await.1.to_string();
    assert!(!audit.contains("AAHdqTcv"), "the token is never audited");

    let update = json!({ "update_id": 77001, "message": {
        "message_id": 1, "date": time::OffsetDateTime::now_utc().unix_timestamp(),
        "from": { "id": 66601, "is_bot": false, "first_name": "Rui" },
        "chat": { "id": 66601, "type": "private", "first_name": "Rui" }, "text": "Olá from my own bot" } });
    let post = |secret: String| {
        let (http, url, update) = (s.http.clone(), url.clone(), update.clone());
        async move {
            http.post(url)
                .header("x-telegram-bot-api-secret-token", secret)
                .json(&update)
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    // The stack bot's secret is not this bot's.
    assert_eq!(post(TELEGRAM_SECRET_TOKEN.to_owned()).await, 403);
    assert_eq!(post(secret.clone()).await, 200);
    let conv = one_conversation(&s).await;
    let id = conv["id"].as_str().unwrap().to_owned();
    assert_eq!(conv["last_inbound"]["our_address"], bot.as_str());
    let (status, reply) = s.reply(&id, "own-bot-1", "Olá Rui!").await;
    assert_eq!(status, 202, "{reply}");
    let sent = eventually("the reply to go out as the workspace's bot", || async {
        let r = s.telegram.received_by(&bot);
        (!r.is_empty()).then_some(r)
    })
    .await;
    assert_eq!(sent[0].body, json!({ "chat_id": "66601", "text": "Olá Rui!" }));

    // Disconnected: Telegram no longer posts, the secret is gone, updates are refused.
    assert_eq!(s.send_as("DELETE", &path, &admin, None).await.0, 200);
    assert!(s.telegram.webhook(&bot).is_none());
    assert!(sm.get_secret_value().secret_id(&name).send().await.is_err());
}

/// A workspace brings its own Twilio account for a number: the credentials are checked with Twilio
/// and kept in the workspace's own secret; that number's webhooks verify with that account's
/// token (the stack's is refused), replies go out through that account, and its signed status
/// callbacks move the tick. Disconnecting deletes the secret.
#[tokio::test]
async fn a_workspace_brings_its_own_twilio_account_for_a_number() {
    let s = spawn_stack().await;
    let (sid, token) = ("AC0123456789abcdef0123456789abcdef", "0123456789abcdef0123456789abcdef");
    s.twilio.add_account(sid, token);
    let number = random_number();
    let admin = s.token_as("ada", domain::Role::Admin);
    let path = format!("/channels/sms/{number}");
    let wrong = json!({ "twilio": { "account_sid": sid, "auth_token": "ffffffffffffffffffffffffffffffff" } });
    let (status, body) = s.send_as("PUT", &path, &admin, Some(wrong)).await;
    assert_eq!(status, 422, "Twilio refuses a wrong token: {body}");
    let (status, body) =
        s.send_as("PUT", &path, &admin, Some(json!({ "twilio": { "account_sid": sid, "auth_token": token } }))).await;
    assert_eq!(status, 201, "{body}");
    assert!(!body.to_string().contains(token), "the token is never answered");
    let sm = aws_sdk_secretsmanager::Client::new(&s.aws);
    let name = format!("{}/credentials/twilio/{number}", s.stack.provisioned.stack);
    assert!(sm.get_secret_value().secret_id(&name).send().await.unwrap().secret_string().unwrap().contains(sid));

    let form = sms_form(&new_sid(), "+14155550123", &number, "Hi, it's Maya");
    assert_eq!(
        s.post_signed("/webhooks/twilio/sms", &form, AUTH_TOKEN).await.status(),
        403,
        "the stack's token is not this number's"
    );
    assert_eq!(s.post_signed("/webhooks/twilio/sms", &form, token).await.status(), 200);
    let conv = one_conversation(&s).await;
    let id = conv["id"].as_str().unwrap().to_owned();
    let (status, reply) = s.reply(&id, "own-twilio-1", "Hi Maya!").await;
    assert_eq!(status, 202, "{reply}");
    let reply_id = reply["message"]["id"].as_str().unwrap().to_owned();
    let sent = eventually("the reply to go out through the workspace's account", || async {
        s.twilio.received().into_iter().find(|r| r.get("To") == Some("+14155550123") && r.sid.is_some())
    })
    .await;
    assert_eq!(sent.account_sid, sid);
    assert_eq!(sent.get("From"), Some(number.as_str()));
    eventually("that account's signed callbacks to deliver it", || async {
        let (status, _) = message_status(&s, &id, &reply_id).await;
        (status == "delivered").then_some(())
    })
    .await;

    assert_eq!(s.send_as("DELETE", &path, &admin, None).await.0, 200);
    assert!(sm.get_secret_value().secret_id(&name).send().await.is_err(), "the secret is deleted");
}

/// A workspace connects its own Facebook Page with the Page's access token: checked with Meta,
/// kept in the workspace's own secret, and replies from that Page go out with it (the stack's Meta
/// app still receives and verifies every Page's webhooks).
#[tokio::test]
async fn a_workspace_connects_its_own_page_with_its_token() {
    let s = spawn_stack().await;
    let page = format!("1098{:011}", ulid::Ulid::new().random() % 100_000_000_000);
    let token = format!("EAAG-own-page-token-{}", ulid::Ulid::new());
    s.meta.add_page(&page, &token);
    let admin = s.token_as("ada", domain::Role::Admin);
    let path = format!("/channels/messenger/{page}");
    let (status, body) =
        s.send_as("PUT", &path, &admin, Some(json!({ "page_token": "EAAG-someone-elses-page-token" }))).await;
    assert_eq!(status, 422, "Meta refuses another Page's token: {body}");
    let (status, body) = s.send_as("PUT", &path, &admin, Some(json!({ "page_token": token }))).await;
    assert_eq!(status, 201, "{body}");
    assert!(!body.to_string().contains(&token));

    let mut event =
        s.meta_text(domain::Channel::Messenger, &format!("m_{}", ulid::Ulid::new()), "24000000000000001", "Hello Page");
    event["entry"][0]["id"] = page.clone().into();
    event["entry"][0]["messaging"][0]["recipient"]["id"] = page.clone().into();
    assert_eq!(s.meta_in(&event).await.status(), 200);
    let conv = one_conversation(&s).await;
    let id = conv["id"].as_str().unwrap().to_owned();
    let (status, reply) = s.reply(&id, "own-page-1", "Hello from our Page").await;
    assert_eq!(status, 202, "{reply}");
    let sent = eventually("the reply to go out with the Page's own token", || async {
        s.meta.received().into_iter().find(|r| r.path == format!("/{page}/messages") && r.id.is_some())
    })
    .await;
    assert_eq!(sent.body["message"]["text"], "Hello from our Page");

    assert_eq!(s.send_as("DELETE", &path, &admin, None).await.0, 200);
    let name = format!("{}/credentials/meta/{page}", s.stack.provisioned.stack);
    assert!(aws_sdk_secretsmanager::Client::new(&s.aws).get_secret_value().secret_id(name).send().await.is_err());
}

/// A workspace connects a WhatsApp number of its own business account with that account's
/// access token: checked with Meta, kept in the workspace's own secret; its customers' media are
/// fetched and its replies sent with it (the stack's app still receives and verifies the webhooks).
#[tokio::test]
async fn a_workspace_connects_its_own_whatsapp_number_with_its_token() {
    let s = spawn_stack().await;
    let number = format!("1077{:011}", ulid::Ulid::new().random() % 100_000_000_000);
    let token = format!("EAAG-own-business-token-{}", ulid::Ulid::new());
    s.whatsapp.add_number(&number, &token);
    let admin = s.token_as("ada", domain::Role::Admin);
    let path = format!("/channels/whatsapp/{number}");
    let (status, body) =
        s.send_as("PUT", &path, &admin, Some(json!({ "access_token": "EAAG-the-stacks-or-someone-elses" }))).await;
    assert_eq!(status, 422, "Meta refuses a token that does not reach the number: {body}");
    let (status, body) = s.send_as("PUT", &path, &admin, Some(json!({ "page_token": token }))).await;
    assert_eq!(status, 422, "a Page token is not a WhatsApp number's: {body}");
    let waba = format!("1099{:011}", ulid::Ulid::new().random() % 100_000_000_000);
    let connect = json!({ "access_token": token, "business_account_id": waba });
    let (status, body) = s.send_as("PUT", &path, &admin, Some(connect)).await;
    assert_eq!(status, 201, "{body}");
    assert!(!body.to_string().contains(&token));
    // Templates go to the workspace's own business account, with its token.
    let draft = json!({ "name": "lid_replaced", "language": "en_US", "category": "utility",
        "body": "Hi {{1}}, a new lid is on its way.", "examples": { "body": ["Ana"] } });
    let (status, body) = s.send_as("POST", "/whatsapp/templates", &admin, Some(draft)).await;
    assert_eq!(status, 201, "{body}");
    let at_meta = s.whatsapp.templates().into_iter().find(|t| t.business_account_id == waba).expect("submitted");
    assert_eq!(at_meta.access_token, token);
    let name = format!("{}/credentials/whatsapp/{number}", s.stack.provisioned.stack);
    let sm = aws_sdk_secretsmanager::Client::new(&s.aws);
    assert!(sm.get_secret_value().secret_id(&name).send().await.is_ok(), "kept in the workspace's own secret");

    // A customer sends a photo to that number: fetched from Meta with the workspace's token.
    let digits = random_number().trim_start_matches('+').to_owned();
    let mut photo = s.whatsapp_text(&format!("wamid.own{}", ulid::Ulid::new()), &digits, "Ana", "");
    photo["entry"][0]["changes"][0]["value"]["metadata"]["phone_number_id"] = number.clone().into();
    let m = &mut photo["entry"][0]["changes"][0]["value"]["messages"][0];
    m["type"] = json!("image");
    m.as_object_mut().unwrap().remove("text");
    let media = format!("2{:015}", ulid::Ulid::new().random() % 1_000_000_000_000_000);
    m["image"] = json!({ "id": media, "mime_type": "image/jpeg", "sha256": "x", "caption": "Broken lid" });
    assert_eq!(s.whatsapp_in(&photo).await.status(), 200);
    let fetched: Vec<String> =
        s.whatsapp.media_fetches().into_iter().filter(|(id, _)| id == &media).map(|(_, t)| t).collect();
    assert_eq!(fetched, [token.clone(), token.clone()], "the lookup and the download, both with its token");
    let conv = one_conversation(&s).await;
    let id = conv["id"].as_str().unwrap().to_owned();
    let image = eventually("the photo to arrive", || async {
        s.messages(&id).await.into_iter().find(|m| m["text"] == "Broken lid")
    })
    .await;
    assert!(image["attachments"][0]["url"].as_str().unwrap().starts_with("s3://"), "{image}");

    // The reply goes out from that number with its token (the fake refuses any other).
    let (status, reply) = s.reply(&id, "own-wa-1", "Sorry about that, a new one is on its way").await;
    assert_eq!(status, 202, "{reply}");
    let sent = eventually("the reply to go out with the number's own token", || async {
        s.whatsapp.received().into_iter().find(|r| r.path == format!("/{number}/messages") && r.id.is_some())
    })
    .await;
    assert_eq!(sent.body["text"]["body"], "Sorry about that, a new one is on its way");

    assert_eq!(s.send_as("DELETE", &path, &admin, None).await.0, 200);
    assert!(sm.get_secret_value().secret_id(&name).send().await.is_err(), "the secret is deleted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whatsapp_templates_go_through_metas_review_and_rich_replies_reach_the_cloud_api() {
    let s = spawn_stack().await;
    let admin = s.token_as("ada", kit::auth::Role::Admin);
    let waba = "102290129340398";
    // The number is connected with its business account; the template is submitted there.
    let path = format!("/channels/whatsapp/{}", s.whatsapp_number_id);
    let (status, body) = s.send_as("PUT", &path, &admin, Some(json!({ "business_account_id": waba }))).await;
    assert_eq!(status, 200, "{body}");
    let draft = json!({ "name": "order_update", "language": "en_US", "category": "utility",
        "body": "Hi {{1}}, order {{2}} ships today.",
        "header": { "format": "text", "text": "Order {{1}}" }, "footer": "Acme Shop",
        "buttons": [{ "type": "url", "text": "Track it", "url": "https://acme.example/t/{{1}}" },
                    { "type": "quick_reply", "text": "Talk to us" }],
        "examples": { "body": ["Ana", "8812"], "header_text": "8812", "urls": ["https://acme.example/t/8812"] } });
    let (status, body) = s.send_as("POST", "/whatsapp/templates", &admin, Some(draft.clone())).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["template"]["status"], "pending");
    let at_meta = s.whatsapp.templates();
    assert_eq!((at_meta.len(), at_meta[0].business_account_id.as_str()), (1, waba));
    assert_eq!(body["template"]["meta_id"], at_meta[0].id.as_str());
    assert_eq!(
        at_meta[0].body["components"][0],
        json!({ "type": "HEADER", "format": "TEXT", "text": "Order {{1}}", "example": { "header_text": ["8812"] } })
    );
    assert_eq!(at_meta[0].body["components"][3]["buttons"][0]["example"], json!(["https://acme.example/t/8812"]));
    // The same again submits nothing.
    assert_eq!(s.send_as("POST", "/whatsapp/templates", &admin, Some(draft)).await.0, 200);
    assert_eq!(s.whatsapp.templates().len(), 1);

    // A customer writes; the template cannot go out before Meta approves it.
    let digits = random_number().trim_start_matches('+').to_owned();
    let wamid_in = wamid();
    assert_eq!(s.whatsapp_in(&s.whatsapp_text(&wamid_in, &digits, "Ana", "Where is my order?")).await.status(), 200);
    let id = one_conversation(&s).await["id"].as_str().unwrap().to_owned();
    let template = json!({ "template": { "name": "order_update", "language": "en_US", "parameters": ["Ana", "8812"],
        "header": { "text": "8812" }, "buttons": [{ "type": "url", "index": 0, "text": "8812" },
                                                  { "type": "quick_reply", "index": 1, "payload": "HUMAN-8812" }] } });
    let (status, body) = s.send_message(&id, "tpl-early", template.clone()).await;
    assert_eq!(status, 422, "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("Pending"), "{body}");

    // Meta approves it (a signed webhook to the stack); the registry follows.
    s.whatsapp.review_template("order_update", "en_US", "APPROVED", "NONE").await;
    eventually("the template to be approved", || async {
        let (_, listed) = s.get("/whatsapp/templates?status=approved").await;
        (listed["items"].as_array().is_some_and(|i| i.len() == 1)).then_some(())
    })
    .await;
    let (status, body) = s.send_message(&id, "tpl-1", template).await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["message"]["text"], "Hi Ana, order 8812 ships today.");

    // Reply buttons, a reaction to the customer's message, a location, and a quoted reply.
    let inbound = s.messages(&id).await.into_iter().find(|m| m["direction"] == "inbound").unwrap();
    let inbound_id = inbound["id"].as_str().unwrap().to_owned();
    let buttons = json!({ "interactive": { "type": "buttons", "body": "Which day suits you?",
        "buttons": [{ "id": "mon", "title": "Monday" }, { "id": "tue", "title": "Tuesday" }] } });
    assert_eq!(s.send_message(&id, "rich-1", buttons).await.0, 202);
    let reaction = json!({ "reaction": { "message_id": inbound_id, "emoji": "👍" } });
    assert_eq!(s.send_message(&id, "rich-2", reaction).await.0, 202);
    let location = json!({ "location": { "latitude": 51.5072, "longitude": -0.1276, "name": "Acme London" } });
    assert_eq!(s.send_message(&id, "rich-3", location).await.0, 202);
    let quoted = json!({ "text": "About this: it left today.", "reply_to": inbound_id });
    assert_eq!(s.send_message(&id, "rich-4", quoted).await.0, 202);
    // Too many buttons never reach Meta.
    let four = json!({ "interactive": { "type": "buttons", "body": "Pick",
        "buttons": [{ "id": "a", "title": "A" }, { "id": "b", "title": "B" }, { "id": "c", "title": "C" }, { "id": "d", "title": "D" }] } });
    assert_eq!(s.send_message(&id, "rich-5", four).await.0, 422);

    let sent = eventually("WhatsApp to receive all five", || async {
        let r = s.whatsapp.received();
        (r.len() >= 5).then_some(r)
    })
    .await;
    let by_type = |t: &str| sent.iter().find(|m| m.body["type"] == t).map(|m| m.body.clone()).unwrap_or_default();
    assert_eq!(
        by_type("template")["template"]["components"],
        json!([{ "type": "header", "parameters": [{ "type": "text", "text": "8812" }] },
               { "type": "body", "parameters": [{ "type": "text", "text": "Ana" }, { "type": "text", "text": "8812" }] },
               { "type": "button", "sub_type": "url", "index": "0", "parameters": [{ "type": "text", "text": "8812" }] },
               { "type": "button", "sub_type": "quick_reply", "index": "1", "parameters": [{ "type": "payload", "payload": "HUMAN-8812" }] }])
    );
    assert_eq!(
        by_type("interactive")["interactive"],
        json!({ "type": "button", "body": { "text": "Which day suits you?" }, "action": { "buttons": [
            { "type": "reply", "reply": { "id": "mon", "title": "Monday" } },
            { "type": "reply", "reply": { "id": "tue", "title": "Tuesday" } }] } })
    );
    assert_eq!(by_type("reaction")["reaction"], json!({ "message_id": wamid_in, "emoji": "👍" }));
    assert_eq!(
        by_type("location")["location"],
        json!({ "latitude": 51.5072, "longitude": -0.1276, "name": "Acme London" })
    );
    let text = sent.iter().find(|m| m.body["type"] == "text").unwrap();
    assert_eq!(text.body["context"], json!({ "message_id": wamid_in }));

    // Meta pauses it for low quality: sends are refused until it is approved again.
    s.whatsapp.review_template("order_update", "en_US", "PAUSED", "").await;
    eventually("the template to be paused", || async {
        let (_, listed) = s.get("/whatsapp/templates?status=paused").await;
        (listed["items"].as_array().is_some_and(|i| i.len() == 1)).then_some(())
    })
    .await;
    let again = json!({ "template": { "name": "order_update", "language": "en_US", "parameters": ["Ana", "8812"],
        "header": { "text": "8812" }, "buttons": [{ "type": "url", "index": 0, "text": "8812" }] } });
    assert_eq!(s.send_message(&id, "tpl-2", again).await.0, 422);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_sms_number_on_a_messaging_service_replies_from_its_pool() {
    let s = spawn_stack().await;
    let admin = s.token_as("ada", kit::auth::Role::Admin);
    let service = "MG9752274e9e519418a7406176694466fa";
    s.twilio.add_messaging_service(service, &[&s.number]);
    let path = format!("/channels/sms/{}", s.number);
    let (status, body) = s.send_as("PUT", &path, &admin, Some(json!({ "messaging_service_sid": service }))).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["channel"]["messaging_service_sid"], service);
    let (status, _) = s.send_as("PUT", &path, &admin, Some(json!({ "messaging_service_sid": "PN123" }))).await;
    assert_eq!(status, 422);

    let customer = random_number();
    assert_eq!(
        s.text_in(&format!("SM{:032x}", ulid::Ulid::new().0), &customer, "Is the shop open?").await.status(),
        200
    );
    let id = one_conversation(&s).await["id"].as_str().unwrap().to_owned();
    let (status, reply) = s.reply(&id, "svc-1", "Until 6pm today.").await;
    assert_eq!(status, 202, "{reply}");
    let sent = eventually("Twilio to receive the reply", || async {
        s.twilio.received().into_iter().find(|r| r.get("Body") == Some("Until 6pm today."))
    })
    .await;
    assert_eq!(sent.get("MessagingServiceSid"), Some(service));
    assert_eq!(sent.get("To"), Some(customer.as_str()));
    // Twilio picked the sender from the pool, and its status callbacks reach the message.
    let reply_id = reply["message"]["id"].as_str().unwrap().to_owned();
    eventually("the reply to be delivered", || async {
        let (status, _) = message_status(&s, &id, &reply_id).await;
        (status == "delivered").then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_whatsapp_reply_is_resent_by_sms_by_hand_and_by_the_workspaces_policy() {
    let s = spawn_stack().await;
    // One person on WhatsApp and SMS: one thread with both routes.
    let number = random_number();
    let digits = number.trim_start_matches('+').to_owned();
    assert_eq!(s.whatsapp_in(&s.whatsapp_text(&wamid(), &digits, "Rui", "Is my parcel coming?")).await.status(), 200);
    let id = one_conversation(&s).await["id"].as_str().unwrap().to_owned();
    assert_eq!(s.text_in(&format!("SM{:032x}", ulid::Ulid::new().0), &number, "Texting too").await.status(), 200);
    eventually("the SMS to join the thread", || async { (s.messages(&id).await.len() == 2).then_some(()) }).await;

    // Meta refuses the reply (code 131047: the window closed on Meta's side).
    let refusal = json!({ "error": { "message": "Re-engagement message", "type": "OAuthException", "code": 131047,
        "error_data": { "messaging_product": "whatsapp", "details": "More than 24 hours have passed" }, "fbtrace_id": "A" } });
    s.whatsapp.script(1, 400, refusal.clone());
    let (status, reply) = s.send_message(&id, "fb-1", json!({ "text": "Yes, tomorrow.", "channel": "whatsapp" })).await;
    assert_eq!(status, 202, "{reply}");
    let failed = reply["message"]["id"].as_str().unwrap().to_owned();
    eventually("the reply to fail", || async {
        let (status, _) = message_status(&s, &id, &failed).await;
        (status == "failed").then_some(())
    })
    .await;

    // No policy yet: the agent re-sends it by SMS; twice is one re-send, by email is refused.
    let path = format!("/conversations/{id}/messages/{failed}/resend");
    let agent = s.token();
    let (status, body) = s.send_as("POST", &path, &agent, Some(json!({ "channel": "sms" }))).await;
    assert_eq!(status, 202, "{body}");
    let resent = body["message_id"].as_str().unwrap().to_owned();
    let (status, again) = s.send_as("POST", &path, &agent, Some(json!({ "channel": "sms" }))).await;
    assert_eq!((status, again["message_id"].as_str()), (202, Some(resent.as_str())));
    assert_eq!(s.send_as("POST", &path, &agent, Some(json!({ "channel": "email" }))).await.0, 409);
    let sms = eventually("Twilio to receive the re-send", || async {
        s.twilio.received().into_iter().find(|r| r.get("Body") == Some("Yes, tomorrow."))
    })
    .await;
    assert_eq!(sms.get("To"), Some(number.as_str()));
    let (_, m) = message_status(&s, &id, &resent).await;
    assert_eq!((m["channel"].as_str(), m["metadata"]["resend_of"].as_str()), (Some("sms"), Some(failed.as_str())));

    // With a policy, the next refusal is re-sent by SMS without anyone asking.
    let admin = s.token_as("ada", kit::auth::Role::Admin);
    let (status, body) =
        s.send_as("PUT", "/workspace", &admin, Some(json!({ "fallback": { "whatsapp": ["sms", "email"] } }))).await;
    assert_eq!(status, 200, "{body}");
    s.whatsapp.script(1, 400, refusal);
    let (status, reply) = s.send_message(&id, "fb-2", json!({ "text": "Courier: DPD.", "channel": "whatsapp" })).await;
    assert_eq!(status, 202, "{reply}");
    let second = reply["message"]["id"].as_str().unwrap().to_owned();
    let auto = eventually("the policy to re-send it", || async {
        s.messages(&id).await.into_iter().find(|m| m["metadata"]["resend_of"] == second.as_str())
    })
    .await;
    assert_eq!((auto["channel"].as_str(), auto["text"].as_str()), (Some("sms"), Some("Courier: DPD.")));
    assert_eq!(auto["metadata"]["auto_reply"], "fallback");
    eventually("Twilio to receive it", || async {
        s.twilio.received().into_iter().find(|r| r.get("Body") == Some("Courier: DPD."))
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reply_typed_in_metas_inbox_joins_the_thread_once_and_our_own_echoes_add_nothing() {
    let s = spawn_stack().await;
    let psid = format!("71{:014}", ulid::Ulid::new().random() % 100_000_000_000_000);
    let hi =
        s.meta_text(domain::Channel::Messenger, &format!("m_{}", ulid::Ulid::new()), &psid, "Do you ship to Lisbon?");
    assert_eq!(s.meta_in(&hi).await.status(), 200);
    let id = one_conversation(&s).await["id"].as_str().unwrap().to_owned();
    let page = s.messenger_page.clone();
    let echo = |mid: &str, app: u64, text: &str| {
        let now = time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000;
        json!({ "object": "page", "entry": [{ "id": page, "time": now as i64, "messaging": [{
            "sender": { "id": page }, "recipient": { "id": psid }, "timestamp": now as i64,
            "message": { "mid": mid, "is_echo": true, "app_id": app, "text": text } }] }] })
    };
    // Someone answers from Meta Business Suite (another app): recorded as ours, once.
    let typed = echo("m_typed_in_inbox", 263_902_037_430_900, "Yes, in three days.");
    assert_eq!(s.meta_in(&typed).await.status(), 200);
    assert_eq!(s.meta_in(&typed).await.status(), 200, "a redelivery");
    let recorded = eventually("the inbox message to join the thread", || async {
        s.messages(&id).await.into_iter().find(|m| m["direction"] == "outbound")
    })
    .await;
    assert_eq!(recorded["text"], "Yes, in three days.");
    assert_eq!(recorded["metadata"]["sent_from_meta_inbox"], true);
    assert_eq!(recorded["status"], "sent");
    // An echo of our own app confirms a send; of a message we do not know, it adds nothing.
    let ours = echo("m_unknown_own_send", switchboard_local::LOCAL_META_APP_ID.parse().unwrap(), "x");
    assert_eq!(s.meta_in(&ours).await.status(), 200);
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    assert_eq!(s.messages(&id).await.len(), 2, "the customer's message and the one typed in Meta's inbox");
}
