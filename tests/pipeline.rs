//! The happy paths end to end: HTTP and AMQP ingest through enrich and render to a real SMTP
//! server and a webhook receiver, the status API, idempotency, batches and stored templates.

use std::collections::HashSet;

use futures_util::future::join_all;
use serde_json::{Value, json};

use notify_e2e::{DEADLINE, Stack, email_to, next_message, props, welcome};
use notify_testkit::signature::verify_request;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_welcome_notification_is_emailed_and_posted_with_a_signature_that_verifies() {
    let stack = Stack::start().await;

    let (status, accepted) = stack.send(&welcome(&stack.webhook.url())).await;
    assert_eq!(status, 202, "{accepted}");
    assert_eq!(accepted["deliveries"], 4);
    let id = accepted["id"].as_str().unwrap().to_owned();

    let mails = stack.smtp.wait_for_messages(2, DEADLINE).await.unwrap();
    let maria = mails
        .iter()
        .find(|m| m.to == ["maria.schmidt@example.com"])
        .expect("Maria's mail");
    let jonas = mails
        .iter()
        .find(|m| m.to == ["jonas.weber@example.com"])
        .expect("Jonas's mail");
    assert_eq!(
        maria.subject().as_deref(),
        Some("Willkommen bei TechCorp, Maria!")
    );
    let text = maria.text_body().unwrap();
    assert!(
        text.contains("Hallo Maria,") && text.contains("danke für Ihre Anmeldung"),
        "{text}"
    );
    assert!(
        text.contains("Als Premium-Kunde erhalten Sie 20 % Rabatt"),
        "{text}"
    );
    assert!(maria.html_body().unwrap().contains("<p>Hallo Maria,</p>"));
    assert!(
        maria
            .header("From")
            .unwrap()
            .contains("willkommen@techcorp.com")
    );
    assert_eq!(
        maria.header("Reply-To").as_deref(),
        Some("support@techcorp.com")
    );
    let jonas_text = jonas.text_body().unwrap();
    assert!(
        jonas_text.contains("Hallo Jonas,") && !jonas_text.contains("Premium"),
        "{jonas_text}"
    );

    let hooks = stack.webhook.wait_for_accepted(2, DEADLINE).await.unwrap();
    for hook in &hooks {
        assert_eq!(hook.path, "/hooks/notify");
        verify_request(&stack.tenant.webhook_secret, hook).expect("the signature verifies");
        assert!(verify_request("whsec_d3JvbmcgYnV0IHZhbGlkIGJhc2U2NA==", hook).is_err());
        let body = hook.json();
        assert_eq!(body["notification_id"], id.as_str());
        assert_eq!(body["metadata"]["campaign_id"], "welcome_2024_q1");
        assert_eq!(hook.header("webhook-id"), body["delivery_id"].as_str());
    }
    let premium = hooks
        .iter()
        .map(|h| h.json())
        .find(|b| b["recipient"]["user_id"] == "usr_123456789")
        .unwrap();
    assert_eq!(premium["title"], "Willkommen bei TechCorp, Maria!");
    assert!(
        premium["content"]
            .as_str()
            .unwrap()
            .contains("Premium-Kunde")
    );

    let view = stack.wait_completed(&id).await;
    let deliveries = view["deliveries"].as_array().unwrap();
    assert_eq!(deliveries.len(), 4);
    for d in deliveries {
        assert_eq!(d["status"], "delivered", "{d}");
        assert_eq!(d["attempts"], 1);
    }
    let channels: HashSet<&str> = deliveries
        .iter()
        .map(|d| d["channel"].as_str().unwrap())
        .collect();
    assert_eq!(channels, HashSet::from(["email", "webhook"]));

    // Another tenant cannot see it, not even that it exists.
    let other = stack.create_tenant("globex");
    let (status, body) = stack
        .get(&format!("/v1/notifications/{id}"), &other.key)
        .await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["error"]["code"], "not_found");
    let (status, _) = stack
        .get(&format!("/v1/notifications/{id}"), "nk_not-a-key")
        .await;
    assert_eq!(status, 401);

    // Each stage counted what it handled, and every worker says it is ready.
    assert!(
        stack
            .metric(
                "notify-enrich",
                "notify_messages_consumed_total",
                &["stage=\"enrich\""]
            )
            .await
            >= 1.0
    );
    assert_eq!(
        stack
            .metric(
                "notify-deliver-email",
                "notify_deliveries_total",
                &["outcome=\"delivered\""]
            )
            .await,
        2.0
    );
    let ready = stack
        .client
        .get(format!(
            "{}/readyz",
            stack.metrics_url("notify-render").await
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);
    let ready: Value = ready.json().await.unwrap();
    assert_eq!(ready["broker"], true);
    assert_eq!(ready["database"], true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_idempotency_key_twice_yields_one_notification_and_one_email() {
    let stack = Stack::start().await;
    let mut body = email_to("ana@example.com", "Ana");
    body["idempotency_key"] = json!("order-4711-shipped");

    let (first_status, first) = stack.send(&body).await;
    let (second_status, second) = stack.send(&body).await;
    assert_eq!(first_status, 202, "{first}");
    assert_eq!(second_status, 200, "{second}");
    assert_eq!(first["id"], second["id"]);
    assert_eq!(second["idempotent_replay"], true);

    let view = stack.wait_completed(first["id"].as_str().unwrap()).await;
    assert_eq!(view["deliveries"][0]["attempts"], 1);
    // A third request after completion changes nothing either.
    let (_, third) = stack.send(&body).await;
    assert_eq!(third["id"], first["id"]);

    assert_eq!(stack.count("SELECT count(*) FROM notifications").await, 1);
    assert_eq!(stack.count("SELECT count(*) FROM attempts").await, 1);
    let mails = stack.smtp.wait_for_messages(1, DEADLINE).await.unwrap();
    assert_eq!(mails.len(), 1);
    assert_eq!(mails[0].subject().as_deref(), Some("Hello Ana"));
    assert_eq!(mails[0].text_body().as_deref(), Some("Your code is 1234."));

    // The same key under another tenant is another notification.
    let other = stack.create_tenant("initech");
    let (status, theirs) = stack.post("/v1/notifications", &other.key, &body).await;
    assert_eq!(status, 202);
    assert_ne!(theirs["id"], first["id"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_key_sent_many_times_at_once_yields_one_notification_and_one_email() {
    let stack = Stack::start().await;
    let mut body = email_to("bo@example.com", "Bo");
    body["idempotency_key"] = json!("invoice-9-ready");
    let others: Vec<_> = (0..10)
        .map(|i| email_to(&format!("other{i}@example.com"), "Other"))
        .collect();

    // Sent side by side, most of these are committed in the same group, where the key is
    // taken by an earlier row of the same statement.
    let same = (0..30).map(|_| stack.send(&body));
    let different = others.iter().map(|b| stack.send(b));
    let (same, different) = tokio::join!(join_all(same), join_all(different));

    let created: Vec<_> = same.iter().filter(|(status, _)| *status == 202).collect();
    assert_eq!(created.len(), 1, "{same:?}");
    let id = created[0].1["id"].clone();
    for (status, answer) in &same {
        assert!(*status == 202 || *status == 200, "{answer}");
        assert_eq!(answer["id"], id, "{answer}");
    }
    assert!(
        different.iter().all(|(status, _)| *status == 202),
        "{different:?}"
    );
    stack.wait_completed(id.as_str().unwrap()).await;

    let mails = stack.smtp.wait_for_messages(11, DEADLINE).await.unwrap();
    let to_bo = mails
        .iter()
        .filter(|m| m.to.iter().any(|r| r == "bo@example.com"))
        .count();
    assert_eq!(to_bo, 1);
    assert_eq!(
        stack
            .count("SELECT count(*) FROM notifications WHERE idempotency_key = 'invoice-9-ready'")
            .await,
        1
    );
    assert_eq!(stack.count("SELECT count(*) FROM notifications").await, 11);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_answers_one_result_per_item_in_order() {
    let stack = Stack::start().await;
    let mut bad = email_to("not-an-address", "X");
    bad["recipients"][0]["email"] = json!("not-an-address");
    let batch = json!({"notifications": [email_to("a@example.com", "A"), bad, email_to("b@example.com", "B")]});

    let (status, body) = stack
        .post("/v1/notifications/batch", &stack.tenant.key, &batch)
        .await;
    assert_eq!(status, 202, "{body}");
    let results = body["results"].as_array().unwrap();
    assert_eq!(results.len(), 3);
    assert_eq!(results[0]["status"], 202);
    assert_eq!(results[1]["status"], 422);
    assert_eq!(
        results[1]["error"]["field"],
        "notifications[1].recipients[0].email"
    );
    assert_eq!(results[2]["status"], 202);

    for r in [&results[0], &results[2]] {
        stack.wait_completed(r["id"].as_str().unwrap()).await;
    }
    let mails = stack.smtp.wait_for_messages(2, DEADLINE).await.unwrap();
    let to: HashSet<String> = mails.iter().flat_map(|m| m.to.clone()).collect();
    assert_eq!(
        to,
        HashSet::from(["a@example.com".to_owned(), "b@example.com".to_owned()])
    );
    assert_eq!(stack.count("SELECT count(*) FROM notifications").await, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stored_template_is_chosen_by_channel_and_locale_with_a_default() {
    let stack = Stack::start().await;
    let key = stack.tenant.key.clone();
    let de = json!({"channel": "email", "locale": "de", "title": "Ihre Bestellung {{metadata.order}}",
                    "content": "Hallo {{upper recipient.first_name}}, Summe: {{number_format metadata.total decimals=2}} €"});
    let fallback = json!({"channel": "email", "title": "Your order {{metadata.order}}",
                          "content": "Hi {{recipient.first_name}}, total: {{number_format metadata.total decimals=2}}"});
    assert_eq!(
        stack
            .client
            .put(format!("{}/v1/templates/order_shipped", stack.http))
            .bearer_auth(&key)
            .json(&de)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        stack
            .client
            .put(format!("{}/v1/templates/order_shipped", stack.http))
            .bearer_auth(&key)
            .json(&fallback)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let broken = json!({"channel": "email", "content": "Hello {{#if x}}"});
    let response = stack
        .client
        .put(format!("{}/v1/templates/broken", stack.http))
        .bearer_auth(&key)
        .json(&broken)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 422);
    let error: Value = response.json().await.unwrap();
    assert_eq!(error["error"]["field"], "content");

    let (status, listed) = stack.get("/v1/templates/order_shipped", &key).await;
    assert_eq!(status, 200);
    assert_eq!(listed["variants"].as_array().unwrap().len(), 2);

    let (status, accepted) = stack
        .send(&json!({
            "recipients": [
                {"email": "jorg@example.de", "locale": "de-AT", "metadata": {"first_name": "Jörg"}},
                {"email": "amelie@example.fr", "locale": "fr", "metadata": {"first_name": "Amélie"}}
            ],
            "channels": [{"type": "email", "config": {"template": "order_shipped"}}],
            "metadata": {"order": "A-17", "total": 1234.5}
        }))
        .await;
    assert_eq!(status, 202, "{accepted}");
    stack.wait_completed(accepted["id"].as_str().unwrap()).await;

    let mails = stack.smtp.wait_for_messages(2, DEADLINE).await.unwrap();
    let german = mails.iter().find(|m| m.to == ["jorg@example.de"]).unwrap();
    assert_eq!(german.subject().as_deref(), Some("Ihre Bestellung A-17"));
    assert_eq!(
        german.text_body().as_deref(),
        Some("Hallo JÖRG, Summe: 1.234,50 €")
    );
    let french = mails
        .iter()
        .find(|m| m.to == ["amelie@example.fr"])
        .unwrap();
    assert_eq!(french.subject().as_deref(), Some("Your order A-17"));
    assert!(
        french
            .text_body()
            .unwrap()
            .starts_with("Hi Amélie, total: 1"),
        "{:?}",
        french.text_body()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_notification_published_on_the_ingest_queue_is_delivered_and_answered() {
    let stack = Stack::start().await;
    let (_connection, reply_to, mut replies) = stack.reply_queue().await;

    let body = serde_json::to_vec(&email_to("queue@example.com", "Quinn")).unwrap();
    let auth = format!("Bearer {}", stack.tenant.key);
    stack
        .publish(
            &stack.queue("ingest"),
            &body,
            &[("authorization", &auth)],
            props()
                .with_reply_to(reply_to.as_str().into())
                .with_correlation_id("corr-1".into()),
        )
        .await;

    let reply = next_message(&mut replies).await;
    assert_eq!(
        reply
            .properties
            .correlation_id()
            .as_ref()
            .map(|c| c.as_str()),
        Some("corr-1")
    );
    let answer: Value = serde_json::from_slice(&reply.data).unwrap();
    let id = answer["id"]
        .as_str()
        .unwrap_or_else(|| panic!("an id in {answer}"))
        .to_owned();
    stack.wait_completed(&id).await;
    let mails = stack.smtp.wait_for_messages(1, DEADLINE).await.unwrap();
    assert_eq!(mails[0].to, ["queue@example.com"]);

    // `notifyctl send` takes the same path and prints the answer.
    let file = std::env::temp_dir().join(format!("{}-send.json", stack.prefix));
    std::fs::write(
        &file,
        serde_json::to_vec(&email_to("cli@example.com", "Cleo")).unwrap(),
    )
    .unwrap();
    let out = stack.notifyctl(&["send", file.to_str().unwrap(), "--key", &stack.tenant.key]);
    let printed: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    let cli_id = printed["id"].as_str().unwrap().to_owned();
    let out = stack.notifyctl(&["status", &cli_id, "--key", &stack.tenant.key]);
    assert!(out.contains(&cli_id), "{out}");
    stack.wait_completed(&cli_id).await;
    let _ = std::fs::remove_file(file);
}
