//! GDPR erasure on the whole local stack: a contact who wrote by MMS and by email (with an
//! attachment), was answered, exported and then erased leaves nothing findable — no item of the
//! table and no object of the buckets holds their number, address, words or id, except the
//! receipt and its audit entry (the id alone); their cost rows stay, anonymous. A contact with
//! more conversations than one request's step is finished by the Step Functions loop.

use domain::ports::{ConversationReader, ErasureStore, InboundStore, Order};
use serde_json::json;
use switchboard_e2e::*;

/// Every item of this test's table, as JSON text.
async fn table_dump(s: &TestStack) -> Vec<String> {
    let client = s.store.client();
    let (mut out, mut start) = (vec![], None);
    loop {
        let page = client.scan().table_name(s.store.table()).set_exclusive_start_key(start).send().await.expect("scan");
        for it in page.items() {
            out.push(format!("{it:?}"));
        }
        match page.last_evaluated_key() {
            Some(k) => start = Some(k.clone()),
            None => return out,
        }
    }
}

/// Every object key of this test's buckets (media and mail), with its bytes as text.
async fn bucket_dump(s: &TestStack) -> Vec<(String, String)> {
    let s3 = aws_sdk_s3::Client::new(&s.aws);
    let mut out = vec![];
    for bucket in s.stack.provisioned.buckets.values() {
        let list = s3.list_objects_v2().bucket(bucket).send().await.expect("list");
        for o in list.contents() {
            let key = o.key().unwrap_or_default().to_owned();
            let body =
                s3.get_object().bucket(bucket).key(&key).send().await.expect("get").body.collect().await.unwrap();
            out.push((format!("{bucket}/{key}"), String::from_utf8_lossy(&body.into_bytes()).into_owned()));
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_erased_contact_leaves_nothing_findable_in_the_table_or_the_buckets() {
    let s = spawn_stack().await;
    let customer = random_number();
    let tag = ulid::Ulid::new().to_string().to_lowercase();
    let (sms_words, mail_words, reply_words) =
        (format!("my boiler {tag} leaks"), format!("invoice {tag} attached"), format!("engineer {tag} booked"));

    // An MMS with a photo, an answer, the customer's email address linked and a mail with a file.
    let media = format!("{}/2010-04-01/Accounts/{ACCOUNT_SID}/Messages/MM1/Media/ME0001", s.twilio.base_url());
    let mut form = sms_form(&new_sid(), &customer, &s.number, &sms_words);
    form.retain(|(k, _)| k != "NumMedia");
    form.extend(
        [("NumMedia", "1"), ("MediaUrl0", media.as_str()), ("MediaContentType0", "image/jpeg")]
            .map(|(k, v)| (k.to_owned(), v.to_owned())),
    );
    assert_eq!(s.post_signed("/webhooks/twilio/sms", &form, AUTH_TOKEN).await.status(), 200);
    let conv = eventually("the conversation", || async { s.conversations().await.into_iter().next() }).await;
    let (id, contact) = (conv["id"].as_str().unwrap().to_owned(), conv["contact_id"].as_str().unwrap().to_owned());
    let (st, _) = s.reply(&id, "e-1", &reply_words).await;
    assert_eq!(st, 202);
    let email = format!("erase.{tag}@example.com");
    let (st, linked) = s
        .send_as(
            "POST",
            &format!("/contacts/{contact}/identities"),
            &s.token(),
            Some(json!({ "kind": "email", "value": email })),
        )
        .await;
    assert_eq!(st, 201, "{linked}");
    let mail = format!(
        "From: Rui <{email}>\r\nTo: {to}\r\nSubject: Invoice\r\nMessage-ID: <i1.{tag}@example.com>\r\nMIME-Version: 1.0\r\n\
         Content-Type: multipart/mixed; boundary=b1\r\n\r\n--b1\r\nContent-Type: text/plain\r\n\r\n{mail_words}\r\n\
         --b1\r\nContent-Type: text/plain; name=notes.txt\r\nContent-Disposition: attachment; filename=notes.txt\r\n\r\n\
         meter reading {tag}\r\n--b1--\r\n",
        to = s.email_address
    );
    s.email_in(&mail, &s.email_address).await;
    let msgs = eventually("the reply sent and priced, and the mail in the thread", || async {
        let m = s.messages(&id).await;
        // Twilio's price reconciled too: its ledger row is counted below.
        let sent = m.iter().any(|m| m["direction"] == "outbound" && m["cost"]["actual_micros"].is_number());
        (m.len() == 3 && sent).then_some(m)
    })
    .await;
    assert!(msgs.iter().any(|m| m["attachments"].as_array().is_some_and(|a| !a.is_empty()) && m["channel"] == "email"));
    let admin = s.token_as("ada", domain::Role::Admin);
    let (st, _) = s.send_as("POST", &format!("/contacts/{contact}/export"), &admin, None).await;
    assert_eq!(st, 201);
    let needles =
        [customer.trim_start_matches('+').to_owned(), email.clone(), tag.clone(), contact.clone(), id.clone()];
    let before = table_dump(&s).await;
    let files_before = bucket_dump(&s).await;
    assert!(before.iter().any(|it| it.contains(&tag)) && files_before.iter().any(|(_, b)| b.contains(&tag)), "seeded");
    let ledger_rows = before.iter().filter(|it| it.contains("ledger_entry")).count();
    assert!(ledger_rows > 0);

    // Agents and supervisors cannot erase; an admin can, and asking again answers the receipt.
    let (st, _) = s.send_as("DELETE", &format!("/contacts/{contact}"), &s.token(), None).await;
    assert_eq!(st, 403);
    let (st, erased) = s.send_as("DELETE", &format!("/contacts/{contact}"), &admin, None).await;
    assert_eq!((st, erased["status"].as_str()), (200, Some("erased")), "{erased}");
    let (st, again) = s.send_as("DELETE", &format!("/contacts/{contact}"), &admin, None).await;
    assert_eq!((st, &again), (200, &erased));
    let (st, _) = s.send_as("DELETE", &format!("/contacts/{}", domain::ContactId::new()), &admin, None).await;
    assert_eq!(st, 404);

    // Nothing findable: no item holds their number, address or words; only the receipt and its
    // audit entry name the (random) contact id; only analytics' dedup markers (ids alone, expiring
    // after 3 days) name the conversation.
    let after = table_dump(&s).await;
    let personal = [customer.trim_start_matches('+').to_owned(), email.clone(), tag.clone()];
    let leaks: Vec<&String> = after.iter().filter(|it| personal.iter().any(|n| it.contains(n.as_str()))).collect();
    assert!(leaks.is_empty(), "items still holding the customer's data: {leaks:#?}");
    let naming: Vec<&String> = after.iter().filter(|it| it.contains(&contact)).collect();
    assert!(naming.iter().all(|it| it.contains("erasure_receipt") || it.contains("contact_erased")), "{naming:#?}");
    assert_eq!(naming.len(), 2, "{naming:#?}");
    let thread: Vec<&String> = after.iter().filter(|it| it.contains(&id) && !it.contains("\"fact\"")).collect();
    assert!(thread.is_empty(), "items still naming the conversation: {thread:#?}");
    let files_after = bucket_dump(&s).await;
    let left: Vec<_> = files_after
        .iter()
        .filter(|(k, b)| needles.iter().any(|n| k.contains(n.as_str()) || b.contains(n.as_str())))
        .collect();
    assert!(left.is_empty(), "objects still about the contact: {left:?}");
    assert!(files_after.len() < files_before.len(), "the photo, the raw mail, its file and the export went");
    // The cost rows stayed, anonymous.
    let ledger: Vec<&String> = after.iter().filter(|it| it.contains("ledger_entry")).collect();
    assert_eq!(ledger.len(), ledger_rows, "{ledger:#?}");
    assert!(ledger.iter().all(|it| it.contains("00000000000000000000000000")), "{ledger:#?}");
    let (st, _) = s.get(&format!("/conversations/{id}")).await;
    assert_eq!(st, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_contact_with_many_conversations_is_finished_by_the_erasure_loop() {
    let s = spawn_stack().await;
    // Twelve conversations over time (more than one request's step erases), stored directly.
    let now = time::OffsetDateTime::now_utc();
    let (contact, mut current) = store::contract::seed_conversation(&s.store, &s.workspace, 7, now).await;
    let contact_id = contact.id;
    for _ in 0..=app::erase::REQUEST_CONVERSATIONS {
        let mut done = current.clone();
        done.status = domain::model::ConversationStatus::Resolved;
        store::contract::replace_conversation(&s.store, &current, done).await;
        let at = time::OffsetDateTime::now_utc();
        let mut next = domain::model::Conversation::start(s.workspace.clone(), &contact, at);
        let msg = store::contract::inbound_message(&s.workspace, &next, &contact, at);
        next.record_inbound(msg.route.clone(), at);
        s.store
            .commit_inbound(domain::ports::InboundCommit {
                hint: None,
                consent: None,
                cost: None,
                new_contact: None,
                conversation: domain::ports::ConversationWrite::Create {
                    conversation: next.clone(),
                    replaces: Some(current.id),
                },
                message: msg,
                provider: "twilio".into(),
                provider_message_id: new_sid(),
            })
            .await
            .unwrap();
        current = next;
    }
    let admin = s.token_as("ada", domain::Role::Admin);
    let (st, first) = s.send_as("DELETE", &format!("/contacts/{contact_id}"), &admin, None).await;
    assert_eq!((st, first["status"].as_str()), (202, Some("erasing")), "{first}");
    // The loop (moto's Step Functions invoking erase-contact through the gateway) finishes it.
    let receipt = eventually("the erasure loop to write the receipt", || async {
        s.store.erasure_receipt(&s.workspace, contact_id).await.unwrap()
    })
    .await;
    assert_eq!(receipt.by.as_str(), "ada");
    assert!(s.store.messages(&s.workspace, current.id, Order::Oldest, 10, None).await.unwrap().items.is_empty());
    let (st, done) = s.send_as("DELETE", &format!("/contacts/{contact_id}"), &admin, None).await;
    assert_eq!((st, done["status"].as_str()), (200, Some("erased")), "{done}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_erases_old_resolved_conversations_a_legal_hold_keeps_everything() {
    let s = spawn_stack().await;
    let admin = s.token_as("ada", domain::Role::Admin);
    let now = time::OffsetDateTime::now_utc();
    // A conversation resolved 40 days ago (with a file) and one still open from then.
    let (contact, old) =
        store::contract::seed_conversation(&s.store, &s.workspace, 21, now - time::Duration::days(40)).await;
    let s3 = aws_sdk_s3::Client::new(&s.aws);
    let media = &s.stack.provisioned.buckets["MediaBucket"];
    let key = format!("media/{}/mms/old-photo.jpg", s.workspace);
    s3.put_object().bucket(media).key(&key).body(b"JFIF".to_vec().into()).send().await.unwrap();
    let mut msg = s.store.messages(&s.workspace, old.id, Order::Oldest, 1, None).await.unwrap().items[0].clone();
    msg.attachments.push(domain::model::Attachment {
        content_type: "image/jpeg".into(),
        size_bytes: Some(4),
        url: format!("s3://{media}/{key}"),
        filename: None,
    });
    s.store.complete_message(&msg).await.unwrap();
    let mut resolved = old.clone();
    resolved.status = domain::model::ConversationStatus::Resolved;
    store::contract::replace_conversation(&s.store, &old, resolved).await;
    let (_, open) =
        store::contract::seed_conversation(&s.store, &s.workspace, 22, now - time::Duration::days(40)).await;

    // A legal hold first: the run erases nothing, and neither does an erasure request.
    let held = json!({ "retention_days": 30, "legal_hold": "Smith v. Acme" });
    let (st, saved) = s.send_as("PUT", "/workspace", &admin, Some(held)).await;
    assert_eq!(st, 200, "{saved}");
    let out = s.invoke("retention-run", &json!({})).await;
    assert_eq!(out["workspaces"][0]["swept"]["held"], true, "{out}");
    assert!(s.store.conversation(&s.workspace, old.id).await.unwrap().is_some());
    let (st, refused) = s.send_as("DELETE", &format!("/contacts/{}", contact.id), &admin, None).await;
    assert_eq!(st, 409, "{refused}");

    // The hold lifted: the old resolved conversation and its file go; open work and the contact stay.
    let (st, _) = s.send_as("PUT", "/workspace", &admin, Some(json!({ "retention_days": 30 }))).await;
    assert_eq!(st, 200);
    let out = s.invoke("retention-run", &json!({})).await;
    assert_eq!(out["workspaces"][0]["swept"]["conversations"], 1, "{out}");
    assert!(s.store.conversation(&s.workspace, old.id).await.unwrap().is_none());
    assert!(s3.head_object().bucket(media).key(&key).send().await.is_err(), "the file went with it");
    assert!(s.store.conversation(&s.workspace, open.id).await.unwrap().is_some());
    assert!(s.store.contact(&s.workspace, contact.id).await.unwrap().is_some());
    assert!(s.store.current_conversation(&s.workspace, &contact).await.unwrap().is_none(), "its slot is free");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_workspace_can_drop_mail_that_fails_dmarc() {
    let s = spawn_stack().await;
    let admin = s.token_as("ada", domain::Role::Admin);
    let (st, _) = s.send_as("PUT", "/workspace", &admin, Some(json!({ "unauthenticated_mail": "drop" }))).await;
    assert_eq!(st, 200);
    let forged = format!(
        "From: CEO <ceo@bank.example>\r\nTo: {to}\r\nSubject: Urgent\r\nMessage-ID: <f1@bank.example>\r\n\r\nPay this now.\r\n",
        to = s.email_address
    );
    s.email_in_spoofed(&forged, &s.email_address).await;
    let real = format!(
        "From: Rui <rui@example.com>\r\nTo: {to}\r\nSubject: Hello\r\nMessage-ID: <r1@example.com>\r\n\r\nHello there.\r\n",
        to = s.email_address
    );
    s.email_in(&real, &s.email_address).await;
    let convs = eventually("the authentic mail", || async {
        let c = s.conversations().await;
        (!c.is_empty()).then_some(c)
    })
    .await;
    assert_eq!(convs.len(), 1, "only the authentic mail reached the inbox: {convs:?}");
    let msgs = s.messages(convs[0]["id"].as_str().unwrap()).await;
    assert_eq!(msgs[0]["text"], "Hello there.");
}

/// The proof link in the mail SES was given for `to`.
async fn proof_link(s: &TestStack, to: &str) -> String {
    let raw = eventually("the proof mail", || async {
        s.emails_sent_to(to).await.into_iter().find(|m| m.contains("Confirm your email address"))
    })
    .await;
    let msg = mail_parser::MessageParser::default().parse(raw.as_bytes()).expect("MIME");
    let text = msg.body_text(0).expect("a text part").into_owned();
    let start = text.find("/webchat/verify/").expect("a proof link");
    let path: String = text[start..].chars().take_while(|c| !c.is_whitespace()).collect();
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_visitor_who_proves_a_customers_address_joins_that_customer() {
    let s = spawn_stack().await;
    // A customer who wrote by (authenticated) email.
    let email = format!("ana.{}@example.com", ulid::Ulid::new().to_string().to_lowercase());
    let mail = format!(
        "From: Ana <{email}>\r\nTo: {to}\r\nSubject: Order 9\r\nMessage-ID: <o9.{email}>\r\n\r\nWhere is order 9?\r\n",
        to = s.email_address
    );
    s.email_in(&mail, &s.email_address).await;
    let customer = eventually("the customer", || async { s.conversations().await.into_iter().next() }).await;
    let customer_contact = customer["contact_id"].as_str().unwrap().to_owned();

    // A web chat visitor writes, then types Ana's address: claimed, and a proof link goes to it.
    let res =
        s.http.post(s.url(&format!("/webchat/{}/visitors", s.webchat_key))).json(&json!({})).send().await.unwrap();
    let session: serde_json::Value = res.json().await.unwrap();
    let token = session["token"].as_str().unwrap();
    let mut widget =
        connect_visitor(&s.stack.visitor_ws_url, &s.webchat_key, token).await.expect("the visitor connects");
    let sent = widget.act(json!({ "action": "message", "client_id": "c-1", "text": "It's Ana, about order 9" })).await;
    assert_eq!(sent["status"], "accepted", "{sent}");
    let chat = eventually("the chat", || async {
        s.conversations().await.into_iter().find(|c| c["contact_id"] != customer_contact.as_str())
    })
    .await;
    let answer = widget.act(json!({ "action": "identify", "email": email })).await;
    assert_eq!(answer["proof"], "sent", "{answer}");
    let (_, before) = s.get(&format!("/contacts/{customer_contact}")).await;
    assert_eq!(before["conversations"].as_array().unwrap().len(), 1, "claimed: nothing joins Ana yet");

    // Opening the link proves nothing (mail scanners open links); the button does.
    let path = proof_link(&s, &email).await;
    let page = s.http.get(s.url(&path)).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let (_, still) = s.get(&format!("/contacts/{customer_contact}")).await;
    assert_eq!(still["conversations"].as_array().unwrap().len(), 1);
    let forged = s.http.post(s.url(&format!("{path}x"))).send().await.unwrap();
    assert_eq!(forged.status(), 400);
    let proved = s.http.post(s.url(&path)).send().await.unwrap();
    assert_eq!(proved.status(), 200);

    // The visitor is Ana: their chat is in her history now, their socket identity hers.
    let (_, after) = s.get(&format!("/contacts/{customer_contact}")).await;
    let ids: Vec<&str> = after["conversations"].as_array().unwrap().iter().filter_map(|c| c["id"].as_str()).collect();
    assert!(ids.contains(&chat["id"].as_str().unwrap()), "{after}");
    let kinds: Vec<&str> =
        after["contact"]["identities"].as_array().unwrap().iter().filter_map(|i| i["kind"].as_str()).collect();
    assert!(kinds.contains(&"webchat"), "{after}");
    // Asking again for the same address: already proven, no second mail.
    let again = widget.act(json!({ "action": "identify", "email": email })).await;
    assert_eq!(again["proof"], "already_proven", "{again}");
}
