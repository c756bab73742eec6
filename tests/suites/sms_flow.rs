//! SMS all the way round, on the local stack: Twilio webhook → inbound queue → processor →
//! DynamoDB → agent API → reply → outbound queue → sender → (fake) Twilio → status callbacks.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_sqs::types::QueueAttributeName;
use domain::events::{InboundEvent, InboundMessage};
use domain::{Identity, PhoneNumber};
use switchboard_e2e::*;

async fn one_conversation(s: &TestStack) -> serde_json::Value {
    eventually("the conversation to appear", || async {
        let c = s.conversations().await;
        (c.len() == 1).then(|| c[0].clone())
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_sms_becomes_a_conversation_and_the_reply_is_delivered() {
    // GIVEN a workspace receiving SMS on its number
    let s = spawn_stack().await;
    let customer = random_number();

    // WHEN a customer texts it
    let res = s.text_in(&new_sid(), &customer, "Hi, where is my order #1234?").await;
    assert_eq!(res.status(), 200);
    assert!(res.text().await.unwrap().contains("<Response></Response>"), "empty TwiML");

    // THEN the agent sees a conversation with the message, on its channel
    let conv = one_conversation(&s).await;
    let id = conv["id"].as_str().unwrap().to_owned();
    assert_eq!(conv["status"], "open");
    assert_eq!(conv["unread_count"], 1);
    assert_eq!(conv["last_inbound"]["channel"], "sms");
    let (status, detail) = s.get(&format!("/conversations/{id}")).await;
    assert_eq!(status, 200);
    assert_eq!(detail["contact"]["identities"][0]["value"], customer);
    let msgs = s.messages(&id).await;
    assert_eq!(msgs.len(), 1);
    assert_eq!(msgs[0]["text"], "Hi, where is my order #1234?");
    assert_eq!(msgs[0]["direction"], "inbound");

    // WHEN the agent replies (and the client retries the request)
    let (status, first) = s.reply(&id, "reply-1", "It ships today!").await;
    assert_eq!(status, 202, "{first}");
    let (status, again) = s.reply(&id, "reply-1", "It ships today!").await;
    assert_eq!(status, 202);
    assert_eq!(first, again, "the retry replays the first answer");
    let reply_id = first["message"]["id"].as_str().unwrap().to_owned();

    // THEN Twilio receives exactly one request, as its Messages API documents it
    let sent = eventually("Twilio to receive the reply", || async {
        let r = s.twilio.received();
        (!r.is_empty()).then_some(r)
    })
    .await;
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].account_sid, ACCOUNT_SID);
    assert_eq!(sent[0].get("To"), Some(customer.as_str()));
    assert_eq!(sent[0].get("From"), Some(s.number.as_str()));
    assert_eq!(sent[0].get("Body"), Some("It ships today!"));
    let callback = sent[0].get("StatusCallback").unwrap();
    assert!(callback.starts_with(&s.url("/webhooks/twilio/status?ws=")), "{callback}");

    // AND its status callbacks carry the message to delivered
    let delivered = eventually("the reply to be delivered", || async {
        let msgs = s.messages(&id).await;
        msgs.into_iter().find(|m| m["id"] == reply_id.as_str() && m["status"] == "delivered")
    })
    .await;
    let trail: Vec<&str> =
        delivered["status_history"].as_array().unwrap().iter().map(|e| e["status"].as_str().unwrap()).collect();
    assert_eq!(trail, ["queued", "sending", "sent", "delivered"]);
    assert_eq!(delivered["provider_message_id"].as_str(), sent[0].sid.as_deref());

    // AND a late, out-of-order callback does not move it back
    s.twilio.send_status_callback(&sent[0], "sent").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let msgs = s.messages(&id).await;
    let reply = msgs.iter().find(|m| m["id"] == reply_id.as_str()).unwrap();
    assert_eq!(reply["status"], "delivered");
    assert_eq!(s.twilio.received().len(), 1, "nothing was sent twice");
    let (_, conv) = s.get(&format!("/conversations/{id}")).await;
    assert_eq!(conv["conversation"]["unread_count"], 0, "replying marks the thread read");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_deliveries_of_one_message_sid_store_one_message() {
    let s = Arc::new(spawn_stack().await);
    let customer = random_number();
    let sid = new_sid();
    // Twilio retrying one webhook, several times at once.
    let statuses = futures::future::join_all((0..10).map(|_| {
        let (s, customer, sid) = (s.clone(), customer.clone(), sid.clone());
        async move { s.text_in(&sid, &customer, "hello").await.status().as_u16() }
    }))
    .await;
    assert!(statuses.iter().all(|&c| c == 200), "{statuses:?}");
    let conv = one_conversation(&s).await;
    let id = conv["id"].as_str().unwrap().to_owned();

    // A redelivery the queue cannot deduplicate (another dedup id, as after its 5-minute window).
    let p = PhoneNumber::parse(&customer).unwrap();
    let late = InboundEvent::Message(InboundMessage {
        workspace: s.workspace.clone(),
        contact_country: Some("US".into()),
        channel: domain::Channel::Sms,
        identity: Identity::phone(&p),
        contact_address: customer.clone(),
        our_address: s.number.clone(),
        contact_name: None,
        provider: "twilio".into(),
        provider_message_id: sid.clone(),
        text: Some("hello".into()),
        attachments: vec![],
        rich: None,
        provider_timestamp: None,
        received_at: time::OffsetDateTime::now_utc(),
        metadata: Default::default(),
        usage: Default::default(),
        thread: None,
        completes: false,
    });
    let sqs = aws_sdk_sqs::Client::new(&s.aws);
    let q = queue::SqsQueue::new(sqs.clone(), s.queue_url("InboundQueue"));
    q.send(&late, "late-group", "a-later-dedup-id").await.unwrap();
    eventually("the late copy to be consumed", || async {
        let attrs = sqs
            .get_queue_attributes()
            .queue_url(s.queue_url("InboundQueue"))
            .attribute_names(QueueAttributeName::All)
            .send()
            .await
            .ok()?
            .attributes?;
        let visible = attrs.get(&QueueAttributeName::ApproximateNumberOfMessages)?.as_str() == "0";
        let in_flight = attrs.get(&QueueAttributeName::ApproximateNumberOfMessagesNotVisible)?.as_str() == "0";
        (visible && in_flight).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(s.messages(&id).await.len(), 1, "one message, however often it was delivered");
    assert_eq!(s.conversations().await.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_first_messages_from_a_new_contact_make_one_contact_and_one_conversation() {
    let s = Arc::new(spawn_stack().await);
    // Through the whole pipeline: ten different messages from one new number at once.
    let customer = random_number();
    let statuses = futures::future::join_all((0..10).map(|i| {
        let (s, customer) = (s.clone(), customer.clone());
        async move { s.text_in(&new_sid(), &customer, &format!("message {i}")).await.status().as_u16() }
    }))
    .await;
    assert!(statuses.iter().all(|&c| c == 200));
    let id = eventually("all ten messages in one conversation", || async {
        let c = s.conversations().await;
        if c.len() != 1 {
            return None;
        }
        let id = c[0]["id"].as_str().unwrap().to_owned();
        (s.messages(&id).await.len() == 10).then_some(id)
    })
    .await;
    assert_eq!(s.conversations().await.len(), 1);
    let (_, detail) = s.get(&format!("/conversations/{id}")).await;
    assert_eq!(detail["conversation"]["unread_count"], 10);

    // And straight at DynamoDB, with no FIFO group serialising them: ten processors racing on one
    // brand-new identity.
    let other = random_number();
    let p = PhoneNumber::parse(&other).unwrap();
    let deps = inbound_processor::Deps::new(
        Arc::new(s.store.clone()),
        Arc::new(queue::SqsQueue::new(aws_sdk_sqs::Client::new(&s.aws), s.queue_url("NotificationQueue"))),
        Arc::new(queue::SqsQueue::new(aws_sdk_sqs::Client::new(&s.aws), s.queue_url("OutboundQueue"))),
        Arc::new(
            timers::SfnTimers::new(aws_sdk_sfn::Client::new(&s.aws)).sla(s.state_machine_arn("SlaTimerStateMachine")),
        ),
    );
    let outcomes = futures::future::join_all((0..10).map(|i| {
        let ev = InboundEvent::Message(InboundMessage {
            workspace: s.workspace.clone(),
            contact_country: Some("US".into()),
            channel: domain::Channel::Sms,
            identity: Identity::phone(&p),
            contact_address: other.clone(),
            our_address: s.number.clone(),
            contact_name: None,
            provider: "twilio".into(),
            provider_message_id: format!("SMrace{i:028}"),
            text: Some(format!("race {i}")),
            attachments: vec![],
            rich: None,
            provider_timestamp: None,
            received_at: time::OffsetDateTime::now_utc(),
            metadata: Default::default(),
            usage: Default::default(),
            thread: None,
            completes: false,
        });
        let deps = &deps;
        async move { inbound_processor::ingest(deps, ev).await.expect("ingest") }
    }))
    .await;
    let convs: HashSet<_> = outcomes.iter().filter_map(inbound_processor::Ingested::conversation).collect();
    assert_eq!(convs.len(), 1, "one conversation");
    let conv = convs.into_iter().next().unwrap();
    assert_eq!(s.messages(&conv.to_string()).await.len(), 10);
    assert_eq!(s.conversations().await.len(), 2, "one per contact");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_unsigned_and_misaddressed_webhooks_store_nothing() {
    let s = spawn_stack().await;
    let customer = random_number();
    let form = sms_form(&new_sid(), &customer, &s.number, "let me in");
    // Signed with the wrong token.
    let forged = s.post_signed("/webhooks/twilio/sms", &form, "not-the-auth-token").await;
    assert_eq!(forged.status(), 403);
    let body: serde_json::Value = forged.json().await.unwrap();
    assert_eq!(body["error"]["code"], "forbidden");
    // No signature at all.
    let unsigned = s.http.post(s.url("/webhooks/twilio/sms")).form(&form).send().await.unwrap();
    assert_eq!(unsigned.status(), 403);
    // Signed, but tampered with after signing.
    let signature = domain::channels::twilio::compute_signature(AUTH_TOKEN, &s.url("/webhooks/twilio/sms"), &form);
    let mut tampered = form.clone();
    tampered.iter_mut().find(|(k, _)| k == "Body").unwrap().1 = "something else".into();
    let res = s
        .http
        .post(s.url("/webhooks/twilio/sms"))
        .header("x-twilio-signature", signature)
        .form(&tampered)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    // A forged status callback.
    let cb = [("MessageSid".to_owned(), new_sid()), ("MessageStatus".to_owned(), "delivered".to_owned())];
    assert_eq!(s.post_signed("/webhooks/twilio/status?ws=x&conv=y&msg=z", &cb, "wrong").await.status(), 403);
    // Correctly signed, for a number no workspace owns.
    let stranger = sms_form(&new_sid(), &customer, &random_number(), "hello?");
    assert_eq!(s.post_signed("/webhooks/twilio/sms", &stranger, AUTH_TOKEN).await.status(), 404);
    // Signed but malformed (no From): a 400 with the reason.
    let mut malformed = form.clone();
    malformed.retain(|(k, _)| k != "From");
    let res = s.post_signed("/webhooks/twilio/sms", &malformed, AUTH_TOKEN).await;
    assert_eq!(res.status(), 400);
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["error"]["message"], "missing From");

    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(s.conversations().await.is_empty(), "nothing stored");
    // Read through `eventually`: moto can fail one read while other tests write to it.
    let sqs = aws_sdk_sqs::Client::new(&s.aws);
    let attrs = eventually("the inbound queue's attributes", || async {
        sqs.get_queue_attributes()
            .queue_url(s.queue_url("InboundQueue"))
            .attribute_names(QueueAttributeName::All)
            .send()
            .await
            .ok()?
            .attributes
    })
    .await;
    assert_eq!(attrs[&QueueAttributeName::ApproximateNumberOfMessages], "0", "nothing enqueued");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_needs_a_valid_token_and_never_crosses_workspaces() {
    let s = spawn_stack().await;
    s.text_in(&new_sid(), &random_number(), "hello").await;
    let conv = one_conversation(&s).await;
    let id = conv["id"].as_str().unwrap();
    let res = s.http.get(s.url("/conversations")).send().await.unwrap();
    assert_eq!(res.status(), 401);
    let (status, _) = s.get_as("/conversations", "garbage").await;
    assert_eq!(status, 401);
    let other = domain::WorkspaceId::parse("someone-else").unwrap();
    let token = s.token_for(&other);
    let (status, body) = s.get_as("/conversations", &token).await;
    assert_eq!(status, 200);
    assert!(body["items"].as_array().unwrap().is_empty());
    assert_eq!(s.get_as(&format!("/conversations/{id}"), &token).await.0, 404);
    assert_eq!(s.get_as(&format!("/conversations/{id}/messages"), &token).await.0, 404);
    let res = s
        .http
        .post(s.url(&format!("/conversations/{id}/messages")))
        .bearer_auth(&token)
        .header("idempotency-key", "k")
        .json(&serde_json::json!({"text": "hi"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
    assert_eq!(s.get("/nowhere").await.0, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reply_twilio_refuses_is_failed_with_twilios_error() {
    let s = spawn_stack().await;
    // Twilio's magic test number for "invalid To".
    s.text_in(&new_sid(), "+15005550001", "hello").await;
    let conv = one_conversation(&s).await;
    let id = conv["id"].as_str().unwrap().to_owned();
    let (status, body) = s.reply(&id, "k1", "hi").await;
    assert_eq!(status, 202);
    let reply_id = body["message"]["id"].as_str().unwrap().to_owned();
    let failed = eventually("the reply to fail", || async {
        s.messages(&id).await.into_iter().find(|m| m["id"] == reply_id.as_str() && m["status"] == "failed")
    })
    .await;
    let last = failed["status_history"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["error_code"], "21211");
    assert_eq!(s.twilio.received().len(), 1, "a refusal is not retried");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_opts_the_number_out_and_start_opts_it_back_in() {
    let s = spawn_stack().await;
    let customer = random_number();
    assert_eq!(s.text_in(&new_sid(), &customer, "Hello").await.status(), 200);
    let id = one_conversation(&s).await["id"].as_str().unwrap().to_owned();

    // "Stop." as a whole message, any case: opted out, and the message says why it matters.
    assert_eq!(s.text_in(&new_sid(), &customer, " stop. ").await.status(), 200);
    let tagged = eventually("the STOP to be stored", || async {
        s.messages(&id).await.into_iter().find(|m| m["metadata"]["consent_keyword"] == "opt_out")
    })
    .await;
    assert_eq!(tagged["text"], " stop. ");
    let (status, body) = s.reply(&id, "after-stop", "Sorry to see you go").await;
    assert_eq!(status, 422, "{body}");
    let why = body["error"]["message"].as_str().unwrap();
    assert!(why.contains("opted out") && why.contains("START"), "{why}");
    assert!(s.twilio.received().is_empty(), "nothing sent");

    // HELP is answered even now, once, with the help text.
    assert_eq!(s.text_in(&new_sid(), &customer, "HELP").await.status(), 200);
    let answer = eventually("the HELP answer to reach Twilio", || async {
        let r = s.twilio.received();
        (!r.is_empty()).then(|| r[0].clone())
    })
    .await;
    assert_eq!(answer.get("Body"), Some(domain::consent::DEFAULT_HELP_TEXT));
    assert_eq!(answer.get("To"), Some(customer.as_str()));

    // START opts back in; every change is kept with its time and source.
    assert_eq!(s.text_in(&new_sid(), &customer, "START").await.status(), 200);
    eventually("the START to be stored", || async {
        s.messages(&id).await.into_iter().find(|m| m["metadata"]["consent_keyword"] == "opt_in")
    })
    .await;
    let (status, body) = s.reply(&id, "after-start", "Welcome back!").await;
    assert_eq!(status, 202, "{body}");
    let identity = domain::Identity::phone(&PhoneNumber::parse(&customer).unwrap());
    let record = domain::ports::ConsentStore::consent(&s.store, &s.workspace, &identity).await.unwrap().unwrap();
    let history: Vec<_> = record.history.iter().map(|c| c.status).collect();
    assert_eq!(history, vec![domain::consent::Status::OptedOut, domain::consent::Status::OptedIn]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mms_media_are_copied_from_twilio_and_one_over_the_cap_keeps_its_link() {
    // GIVEN a customer sending a photo and a 12 MB video by MMS
    let s = spawn_stack().await;
    let customer = random_number();
    let media =
        |sid: &str| format!("{}/2010-04-01/Accounts/{ACCOUNT_SID}/Messages/MM1/Media/{sid}", s.twilio.base_url());
    let (photo, video) = (media("ME0001"), media(&format!("{}0001", fake_twilio::BIG_MEDIA_PREFIX)));
    let mut form = sms_form(&new_sid(), &customer, &s.number, "Here is the damage");
    form.retain(|(k, _)| k != "NumMedia");
    form.extend(
        [
            ("NumMedia", "2"),
            ("MediaUrl0", photo.as_str()),
            ("MediaContentType0", "image/jpeg"),
            ("MediaUrl1", video.as_str()),
            ("MediaContentType1", "video/mp4"),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned())),
    );
    // WHEN Twilio posts it
    let res = s.post_signed("/webhooks/twilio/sms", &form, AUTH_TOKEN).await;
    assert_eq!(res.status(), 200);
    // THEN the photo is ours (in the media bucket) and the video, over the cap, still arrives
    // with Twilio's link and its size: nothing is lost, nothing over the cap is stored.
    let conv = one_conversation(&s).await;
    let id = conv["id"].as_str().unwrap().to_owned();
    let msgs = eventually("the MMS", || async { Some(s.messages(&id).await).filter(|m| !m.is_empty()) }).await;
    let files = msgs[0]["attachments"].as_array().unwrap().clone();
    assert_eq!(files.len(), 2, "{files:?}");
    assert!(files[0]["url"].as_str().unwrap().starts_with("s3://"), "{}", files[0]);
    assert_eq!(files[0]["size_bytes"], fake_twilio::MEDIA_BYTES.len());
    assert_eq!(files[1]["url"], video);
    assert_eq!(files[1]["size_bytes"], 12 * 1024 * 1024);
    assert_eq!(msgs[0]["text"], "Here is the damage");

    // An agent opens the photo through a short-lived presigned link; the bucket stays private.
    let mid = msgs[0]["id"].as_str().unwrap().to_owned();
    let file = |n: usize| format!("/conversations/{id}/messages/{mid}/attachments/{n}");
    let (status, link) = s.send_as("GET", &file(0), &s.token(), None).await;
    assert_eq!(status, 200, "{link}");
    assert_eq!(link["content_type"], "image/jpeg");
    let url = link["url"].as_str().unwrap();
    assert!(url.contains("X-Amz-Signature") && url.contains("X-Amz-Expires=300"), "{url}");
    let bytes = s.http.get(url).send().await.unwrap().error_for_status().unwrap().bytes().await.unwrap();
    assert_eq!(&bytes[..], fake_twilio::MEDIA_BYTES, "the link serves the stored photo");
    // The video was never copied (over the cap): no link. Finance reads costs, not files; another
    // workspace's token finds nothing.
    let (status, b) = s.send_as("GET", &file(1), &s.token(), None).await;
    assert_eq!(status, 404, "{b}");
    let (status, _) = s.send_as("GET", &file(2), &s.token(), None).await;
    assert_eq!(status, 404);
    let (status, _) = s.send_as("GET", &file(0), &s.token_as("fin", kit::auth::Role::Finance), None).await;
    assert_eq!(status, 403);
    let elsewhere = s.token_for(&domain::WorkspaceId::parse("another-ws").unwrap());
    let (status, _) = s.send_as("GET", &file(0), &elsewhere, None).await;
    assert_eq!(status, 404);

    // The agent answers with a PDF: uploaded straight to the bucket through a presigned PUT, then
    // named on the reply; Twilio fetches it (an MMS) by a presigned link.
    let pdf = b"%PDF-1.4 the refund form".to_vec();
    let upload = |name: &str, content_type: &str, size: usize| serde_json::json!({ "file_name": name, "content_type": content_type, "size": size });
    let (status, up) =
        s.send_as("POST", "/uploads", &s.token(), Some(upload("refund form.pdf", "application/pdf", pdf.len()))).await;
    assert_eq!(status, 201, "{up}");
    let put = s.http.put(up["url"].as_str().unwrap()).header("content-type", "application/pdf").body(pdf.clone());
    assert!(put.send().await.unwrap().status().is_success(), "the browser's PUT is accepted");
    let send = |key: &str, text: &str, files: serde_json::Value| {
        s.http
            .post(s.url(&format!("/conversations/{id}/messages")))
            .bearer_auth(s.token())
            .header("idempotency-key", key)
            .json(&serde_json::json!({ "text": text, "attachments": files }))
            .send()
    };
    let res = send("pdf-reply", "Here is the form", serde_json::json!([{ "key": up["key"] }])).await.unwrap();
    assert_eq!(res.status(), 202);
    let reply: serde_json::Value = res.json().await.unwrap();
    let stored = &reply["message"]["attachments"][0];
    assert_eq!(
        (stored["content_type"].as_str(), stored["size_bytes"].as_u64()),
        (Some("application/pdf"), Some(pdf.len() as u64))
    );
    assert_eq!(stored["filename"], "refund_form.pdf");
    let sent = eventually("the MMS reply to reach Twilio", || async {
        s.twilio.received().into_iter().find(|m| m.get("To") == Some(customer.as_str()))
    })
    .await;
    assert_eq!(sent.get("Body"), Some("Here is the form"));
    let link = sent.get("MediaUrl").or(sent.get("MediaUrl0")).expect("the file's link").to_owned();
    let fetched = s.http.get(&link).send().await.unwrap().error_for_status().unwrap().bytes().await.unwrap();
    assert_eq!(&fetched[..], &pdf[..], "Twilio fetches the agent's PDF by its link");

    // What a channel does not take is refused before anything is stored: a zip is no MMS, and a
    // key nobody uploaded is nothing.
    let (_, zip) = s.send_as("POST", "/uploads", &s.token(), Some(upload("logs.zip", "application/zip", 3))).await;
    let put = s.http.put(zip["url"].as_str().unwrap()).header("content-type", "application/zip").body(b"PK!".to_vec());
    assert!(put.send().await.unwrap().status().is_success());
    let res = send("zip-reply", "", serde_json::json!([{ "key": zip["key"] }])).await.unwrap();
    assert_eq!(res.status(), 422);
    let why = res.json::<serde_json::Value>().await.unwrap()["error"]["message"].as_str().unwrap().to_owned();
    assert!(why.contains("application/zip") && why.contains("image/jpeg"), "{why}");
    let (_, never) = s.send_as("POST", "/uploads", &s.token(), Some(upload("x.png", "image/png", 3))).await;
    let res = send("never-put", "see", serde_json::json!([{ "key": never["key"] }])).await.unwrap();
    assert_eq!(res.status(), 422, "a file that was never PUT");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_agent_texts_a_new_customer_first_and_the_answer_joins_that_conversation() {
    let s = spawn_stack().await;
    let customer = random_number();
    // The agent starts the conversation; a retry finds the same one.
    let start = serde_json::json!({ "channel": "sms", "to": customer });
    let (status, started) = s.send_as("POST", "/conversations", &s.token(), Some(start.clone())).await;
    assert_eq!(status, 201, "{started}");
    let id = started["conversation"]["id"].as_str().unwrap().to_owned();
    let (status, again) = s.send_as("POST", "/conversations", &s.token(), Some(start)).await;
    assert_eq!((status, again["conversation"]["id"].as_str()), (200, Some(id.as_str())));
    // The first message is an ordinary reply: priced, sent once, delivered.
    let (status, sent) = s.reply(&id, "first-touch", "Hi, your order 1042 is delayed by a day. Sorry!").await;
    assert_eq!(status, 202, "{sent}");
    let out = eventually("the first message to reach Twilio", || async {
        s.twilio.received().into_iter().find(|m| m.get("To") == Some(customer.as_str()))
    })
    .await;
    assert_eq!(out.get("From"), Some(s.number.as_str()));
    // The customer answers: threaded into the conversation the agent started.
    assert_eq!(s.text_in(&new_sid(), &customer, "Thanks for letting me know").await.status(), 200);
    let msgs = eventually("the answer in the same conversation", || async {
        Some(s.messages(&id).await).filter(|m| m.len() == 2)
    })
    .await;
    assert_eq!(msgs[1]["text"], "Thanks for letting me know");
    assert_eq!(s.conversations().await.len(), 1, "one conversation for the customer");
    // Opted out numbers cannot be started; WhatsApp needs a template (no window: they never wrote).
    let stopped = random_number();
    assert_eq!(s.text_in(&new_sid(), &stopped, "STOP").await.status(), 200);
    let refused = eventually("the opt-out to be stored", || async {
        let (status, b) = s
            .send_as("POST", "/conversations", &s.token(), Some(serde_json::json!({ "channel": "sms", "to": stopped })))
            .await;
        (status == 422).then_some(b)
    })
    .await;
    assert!(refused["error"]["message"].as_str().unwrap().contains("opted out"), "{refused}");
}
