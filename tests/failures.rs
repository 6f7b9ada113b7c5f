//! What happens when things go wrong: refused input that changes nothing, provider failures
//! that retry or fail, parked messages and their replay, redelivery that never sends twice,
//! and workers that stop or lose the broker mid-stream.

use std::collections::HashSet;
use std::process::Command;

use serde_json::{Value, json};

use notify_e2e::{
    DEADLINE, Options, Reply, Response, Stack, TcpRelay, email_to, header, next_message, props,
    wait_until,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_http_requests_get_a_clear_error_and_change_nothing() {
    let stack = Stack::start().await;
    let url = format!("{}/v1/notifications", stack.http);
    let key = stack.tenant.key.clone();
    let post_raw = |body: Vec<u8>, content_type: &'static str| {
        let request = stack
            .client
            .post(&url)
            .bearer_auth(&key)
            .header("content-type", content_type)
            .body(body);
        async move {
            let r = request.send().await.unwrap();
            let status = r.status().as_u16();
            (status, r.json::<Value>().await.unwrap_or(Value::Null))
        }
    };

    let (status, body) = post_raw(b"{\"title\": \"Hi\", ".to_vec(), "application/json").await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("invalid_json")),
        "{body}"
    );

    let mut missing = email_to("a@example.com", "A");
    missing.as_object_mut().unwrap().remove("recipients");
    let (status, body) = stack.send(&missing).await;
    assert_eq!(
        (status, body["error"]["field"].as_str()),
        (422, Some("recipients")),
        "{body}"
    );

    let mut unknown = email_to("a@example.com", "A");
    unknown["channels"][0]["type"] = json!("carrier_pigeon");
    let (status, body) = stack.send(&unknown).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (422, Some("unknown_channel")),
        "{body}"
    );
    assert_eq!(body["error"]["field"], "channels[0].type");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("carrier_pigeon")
    );

    let (status, body) = stack.send(&email_to("maria@@example", "M")).await;
    assert_eq!(
        (status, body["error"]["field"].as_str()),
        (422, Some("recipients[0].email")),
        "{body}"
    );

    let mut huge = email_to("a@example.com", "A");
    huge["content"] = json!("x".repeat(2 * 1024 * 1024));
    let (status, body) = post_raw(serde_json::to_vec(&huge).unwrap(), "application/json").await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (413, Some("body_too_large")),
        "{body}"
    );

    let (status, body) = post_raw(b"title=hi".to_vec(), "application/x-www-form-urlencoded").await;
    assert_eq!(status, 415, "{body}");

    let mut nul = email_to("a@example.com", "A");
    nul["title"] = json!("bad\u{0}title");
    let (status, body) = stack.send(&nul).await;
    assert_eq!(
        (status, body["error"]["field"].as_str()),
        (422, Some("title")),
        "{body}"
    );

    let (status, body) = stack
        .post(
            "/v1/notifications",
            "nk_forged",
            &email_to("a@example.com", "A"),
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (401, Some("unauthorized"))
    );
    let response = stack
        .client
        .post(&url)
        .json(&email_to("a@example.com", "A"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);

    assert_eq!(stack.count("SELECT count(*) FROM notifications").await, 0);
    assert_eq!(stack.count("SELECT count(*) FROM deliveries").await, 0);
    assert!(stack.smtp.messages().is_empty());

    // Hostile but valid content is accepted, and escaped where it would be markup.
    let hostile = json!({
        "title": "Hi {{recipient.first_name}} 👋",
        "content": "Hello {{recipient.first_name}} — مرحبا",
        "recipients": [{"email": "h@example.com", "metadata": {"first_name": "<script>alert(1)</script>"}}],
        "channels": [{"type": "email"}]
    });
    let (status, body) = stack.send(&hostile).await;
    assert_eq!(status, 202, "{body}");
    let mail = stack
        .smtp
        .wait_for_messages(1, DEADLINE)
        .await
        .unwrap()
        .remove(0);
    let html = mail.html_body().unwrap();
    assert!(
        !html.contains("<script>") && html.contains("&lt;script&gt;"),
        "{html}"
    );
    assert!(html.contains("مرحبا"));
    assert_eq!(
        mail.subject().as_deref(),
        Some("Hi <script>alert(1)</script> 👋")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_amqp_messages_are_routed_to_ingest_rejected_with_the_reason() {
    let stack = Stack::start().await;
    let (_connection, reply_to, mut replies) = stack.reply_queue().await;
    let auth = format!("Bearer {}", stack.tenant.key);
    let ingest = stack.queue("ingest");
    let with_reply = || {
        props()
            .with_reply_to(reply_to.as_str().into())
            .with_correlation_id("c".into())
    };

    stack
        .publish(
            &ingest,
            b"{not json",
            &[("authorization", &auth)],
            with_reply(),
        )
        .await;
    let mut unknown = email_to("a@example.com", "A");
    unknown["channels"][0]["type"] = json!("fax");
    stack
        .publish(
            &ingest,
            &serde_json::to_vec(&unknown).unwrap(),
            &[("authorization", &auth)],
            with_reply(),
        )
        .await;
    let bad_email = serde_json::to_vec(&email_to("nobody", "N")).unwrap();
    stack
        .publish(
            &ingest,
            &bad_email,
            &[("authorization", &auth)],
            with_reply(),
        )
        .await;
    stack
        .publish(
            &ingest,
            &serde_json::to_vec(&email_to("a@example.com", "A")).unwrap(),
            &[],
            with_reply(),
        )
        .await;

    let rejected = stack.take(&stack.queue("ingest.rejected"), 4).await;
    let codes: HashSet<String> = rejected
        .iter()
        .filter_map(|m| header(m, "x-reject-code"))
        .collect();
    assert_eq!(
        codes,
        HashSet::from(
            [
                "invalid_json",
                "unknown_channel",
                "invalid_field",
                "unauthorized"
            ]
            .map(String::from)
        )
    );
    let email_refusal = rejected
        .iter()
        .find(|m| m.data == bad_email)
        .expect("the bad email is kept as sent");
    assert_eq!(
        header(email_refusal, "x-reject-field").as_deref(),
        Some("recipients[0].email")
    );
    assert!(
        header(email_refusal, "x-reject-reason")
            .unwrap()
            .contains("nobody")
    );
    assert!(
        rejected
            .iter()
            .all(|m| header(m, "authorization").is_none()),
        "keys are not kept in the rejected queue"
    );

    for _ in 0..4 {
        let reply: Value = serde_json::from_slice(&next_message(&mut replies).await.data).unwrap();
        assert!(reply["error"]["code"].is_string(), "{reply}");
    }
    assert_eq!(stack.count("SELECT count(*) FROM notifications").await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_smtp_server_answering_451_twice_then_accepting_delivers_one_email_after_two_retries() {
    let stack = Stack::start().await;
    stack.smtp.script([
        Reply::Temporary(451, "try again later".into()),
        Reply::Temporary(451, "still busy".into()),
    ]);

    let (_, accepted) = stack.send(&email_to("retry@example.com", "Rita")).await;
    let view = stack.wait_completed(accepted["id"].as_str().unwrap()).await;
    let delivery = &view["deliveries"][0];
    assert_eq!(delivery["status"], "delivered", "{delivery}");
    assert_eq!(delivery["attempts"], 3);
    assert_eq!(stack.smtp.rejected(), 2);
    assert_eq!(
        stack
            .smtp
            .wait_for_messages(1, DEADLINE)
            .await
            .unwrap()
            .len(),
        1
    );
    let retried = stack
        .metric(
            "notify-deliver-email",
            "notify_messages_retried_total",
            &["stage=\"deliver.email\""],
        )
        .await;
    assert_eq!(retried, 2.0);
    let outcomes: Vec<String> = sqlx::query_scalar("SELECT outcome FROM attempts ORDER BY attempt")
        .fetch_all(&stack.db)
        .await
        .unwrap();
    assert_eq!(outcomes, ["retrying", "retrying", "delivered"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_smtp_550_fails_the_delivery_with_the_servers_answer() {
    let stack = Stack::start().await;
    stack
        .smtp
        .script([Reply::Permanent(550, "mailbox unavailable".into())]);

    let (_, accepted) = stack.send(&email_to("gone@example.com", "Gone")).await;
    let view = stack.wait_completed(accepted["id"].as_str().unwrap()).await;
    let delivery = &view["deliveries"][0];
    assert_eq!(delivery["status"], "failed");
    assert_eq!(delivery["attempts"], 1);
    let error = delivery["last_error"].as_str().unwrap();
    assert!(
        error.contains("550") || error.contains("mailbox unavailable"),
        "{error}"
    );
    assert!(stack.smtp.messages().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partly_failed_chunk_retries_only_its_failed_deliveries() {
    let stack = Stack::start().await;
    stack.smtp.script([
        Reply::Accept,
        Reply::Temporary(421, "slow down".into()),
        Reply::Accept,
    ]);
    let body = json!({
        "title": "Hi {{recipient.first_name}}", "content": "Hello",
        "recipients": [
            {"email": "one@example.com", "metadata": {"first_name": "One"}},
            {"email": "two@example.com", "metadata": {"first_name": "Two"}},
            {"email": "three@example.com", "metadata": {"first_name": "Three"}}
        ],
        "channels": [{"type": "email"}]
    });
    let (_, accepted) = stack.send(&body).await;
    let view = stack.wait_completed(accepted["id"].as_str().unwrap()).await;
    assert!(
        view["deliveries"]
            .as_array()
            .unwrap()
            .iter()
            .all(|d| d["status"] == "delivered"),
        "{view}"
    );
    assert_eq!(
        stack.count("SELECT count(*) FROM attempts").await,
        4,
        "one retry, not a chunk"
    );
    let mails = stack.smtp.wait_for_messages(3, DEADLINE).await.unwrap();
    let ids: HashSet<Option<String>> = mails.iter().map(|m| m.message_id()).collect();
    assert_eq!((mails.len(), ids.len()), (3, 3));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_retry_a_503_and_fail_on_a_400() {
    let stack = Stack::start().await;
    let hook = |path: &str| {
        json!({"content": "ping {{recipient.user_id}}", "recipients": [{"user_id": "svc"}],
               "channels": [{"type": "webhook", "config": {"url": format!("{}{path}", stack.webhook.url())}}]})
    };
    stack.webhook.script([
        Response::status(503),
        Response::status(400).body("{\"error\":\"bad payload\"}"),
    ]);
    let (_, first) = stack.send(&hook("/a")).await;
    let first = stack.wait_completed(first["id"].as_str().unwrap()).await;
    let (_, second) = stack.send(&hook("/b")).await;
    let second = stack.wait_completed(second["id"].as_str().unwrap()).await;

    // The 503 is retried; whichever send met the 400 fails with the endpoint's answer.
    let statuses: Vec<String> = [&first, &second]
        .iter()
        .map(|v| v["deliveries"][0]["status"].as_str().unwrap().to_owned())
        .collect();
    let failed = [&first, &second]
        .into_iter()
        .find(|v| v["deliveries"][0]["status"] == "failed")
        .expect("one failed");
    assert!(
        failed["deliveries"][0]["last_error"]
            .as_str()
            .unwrap()
            .contains("400"),
        "{failed}"
    );
    assert_eq!(
        statuses.iter().filter(|s| *s == "delivered").count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(stack.webhook.requests().len(), 3);
    assert_eq!(stack.webhook.accepted().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_that_run_out_park_the_chunk_and_a_replay_delivers_it() {
    let stack = Stack::start_with(Options {
        retry_tiers: "100ms,200ms",
        ..Options::default()
    })
    .await;
    stack
        .smtp
        .script((0..3).map(|i| Reply::Temporary(451, format!("greylisted {i}"))));

    let (_, accepted) = stack.send(&email_to("late@example.com", "Lee")).await;
    let id = accepted["id"].as_str().unwrap().to_owned();
    let view = stack.wait_completed(&id).await;
    assert_eq!(view["deliveries"][0]["status"], "dead_lettered", "{view}");
    assert_eq!(view["deliveries"][0]["attempts"], 3);

    // The outcome is recorded before the chunk is parked: wait for the parking lot.
    let listed = wait_until("the chunk to be parked", DEADLINE, || async {
        let listed = stack.notifyctl(&["dlq", "list"]);
        listed
            .lines()
            .any(|l| l.starts_with("deliver.email") && !l.trim_end().ends_with(" 0"))
            .then_some(listed)
    })
    .await;
    assert!(
        listed
            .lines()
            .any(|l| l.starts_with("deliver.email") && l.trim_end().ends_with(" 1")),
        "{listed}"
    );
    let listed = stack.notifyctl(&["dlq", "list", "deliver.email"]);
    assert!(
        listed.contains("1 parked") && listed.contains("greylisted 2"),
        "{listed}"
    );
    let (ok, out) = stack.notifyctl_status(&["dlq", "list", "deliver.fax"]);
    assert!(!ok && out.contains("unknown stage"), "{out}");

    let replayed = stack.notifyctl(&["dlq", "replay", "deliver.email"]);
    assert!(replayed.contains("replayed 1"), "{replayed}");
    let view = wait_until(
        "the replayed delivery to be delivered",
        DEADLINE,
        || async {
            let (_, v) = stack
                .get(&format!("/v1/notifications/{id}"), &stack.tenant.key)
                .await;
            (v["deliveries"][0]["status"] == "delivered").then_some(v)
        },
    )
    .await;
    assert_eq!(view["deliveries"][0]["attempts"], 4);
    assert_eq!(
        stack
            .smtp
            .wait_for_messages(1, DEADLINE)
            .await
            .unwrap()
            .len(),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stage_message_that_cannot_be_parsed_is_parked_with_the_reason() {
    let stack = Stack::start().await;
    stack
        .publish(&stack.queue("render"), b"\xff not json", &[], props())
        .await;
    stack.publish(&stack.queue("enrich"), br#"{"schema": 99, "tenant_id": "00000000-0000-0000-0000-000000000000", "notification_id": "00000000-0000-0000-0000-000000000000"}"#, &[], props()).await;

    let parked = stack.take(&stack.queue("render.parked"), 1).await;
    assert_eq!(parked[0].data, b"\xff not json");
    assert!(
        header(&parked[0], "x-park-reason")
            .unwrap()
            .contains("not a render chunk")
    );
    let parked = stack.take(&stack.queue("enrich.parked"), 1).await;
    assert!(
        header(&parked[0], "x-park-reason")
            .unwrap()
            .contains("schema 99")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delivery_message_redelivered_after_sending_does_not_send_again() {
    let stack = Stack::start().await;
    let (_, accepted) = stack.send(&email_to("once@example.com", "Otto")).await;
    let id = accepted["id"].as_str().unwrap().to_owned();
    let view = stack.wait_completed(&id).await;
    let delivery_id = view["deliveries"][0]["id"].as_str().unwrap().to_owned();

    // The chunk as render publishes it, sent again twice: once as a new message and once
    // as a redelivery of the same message id.
    let chunk = json!({
        "schema": 1, "tenant_id": stack.tenant.id, "notification_id": id,
        "spec": {"type": "email", "config": {}},
        "deliveries": [{"delivery_id": delivery_id, "address": "once@example.com",
                        "payload": {"kind": "email", "subject": "Hello Otto", "html": "<p>x</p>", "text": "x"}}]
    });
    let body = serde_json::to_vec(&chunk).unwrap();
    let queue = stack.queue("deliver.email");
    let tenant = stack.tenant.id.clone();
    stack
        .publish(
            &queue,
            &body,
            &[("x-tenant-id", &tenant)],
            props().with_message_id("6f1d0c1e-0000-4000-8000-000000000001".into()),
        )
        .await;
    stack
        .publish(
            &queue,
            &body,
            &[("x-tenant-id", &tenant)],
            props().with_message_id("6f1d0c1e-0000-4000-8000-000000000001".into()),
        )
        .await;

    wait_until("both copies to be skipped", DEADLINE, || async {
        let skipped = stack
            .metric(
                "notify-deliver-email",
                "notify_deliveries_total",
                &["outcome=\"skipped\""],
            )
            .await;
        (skipped >= 2.0).then_some(())
    })
    .await;
    assert_eq!(stack.smtp.messages().len(), 1);
    assert_eq!(stack.count("SELECT count(*) FROM attempts").await, 1);
    let (_, after) = stack
        .get(&format!("/v1/notifications/{id}"), &stack.tenant.key)
        .await;
    assert_eq!(after["deliveries"][0]["attempts"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_stopped_with_sigterm_mid_stream_lose_nothing_and_send_nothing_twice() {
    let stack = Stack::start().await;
    const N: usize = 60;
    let mut ids = Vec::new();
    for i in 0..N {
        let (status, accepted) = stack
            .send(&email_to(&format!("user{i}@example.com"), &format!("U{i}")))
            .await;
        assert_eq!(status, 202);
        ids.push(accepted["id"].as_str().unwrap().to_owned());
        if i == N / 3 {
            stack.smtp.wait_for_messages(1, DEADLINE).await.unwrap();
            let render = stack.stop_worker("notify-render");
            let email = stack.stop_worker("notify-deliver-email");
            let (render, email) = tokio::join!(render, email);
            assert!(
                render.success() && email.success(),
                "graceful exits: {render:?} {email:?}"
            );
        }
    }
    let before_restart = stack.smtp.messages().len();
    assert!(
        before_restart < N,
        "the stop came mid-stream ({before_restart} of {N} sent)"
    );
    stack.start_worker("notify-render");
    stack.start_worker("notify-deliver-email");

    for id in &ids {
        let view = stack.wait_completed(id).await;
        assert_eq!(view["deliveries"][0]["status"], "delivered", "{view}");
    }
    let mails = stack.smtp.wait_for_messages(N, DEADLINE).await.unwrap();
    let unique: HashSet<Option<String>> = mails.iter().map(|m| m.message_id()).collect();
    assert_eq!(
        (mails.len(), unique.len()),
        (N, N),
        "every notification delivered exactly once"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_whose_broker_connection_is_closed_reconnects_and_keeps_delivering() {
    let stack = Stack::start().await;
    let name = format!("notify-deliver-email {}", stack.prefix);
    let connection_pid = || {
        let out = Command::new("rabbitmqctl")
            .args([
                "list_connections",
                "pid",
                "client_properties",
                "--no-table-headers",
                "-q",
            ])
            .output()
            .expect("rabbitmqctl");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .find(|l| l.contains(&format!("\"{name}\"")))
            .and_then(|l| l.split_whitespace().next().map(str::to_owned))
    };
    let old = connection_pid().expect("the worker's connection");
    let closed = Command::new("rabbitmqctl")
        .args(["close_connection", &old, "test closes it"])
        .output()
        .unwrap();
    assert!(
        closed.status.success(),
        "{}",
        String::from_utf8_lossy(&closed.stderr)
    );

    wait_until("the worker to reconnect", DEADLINE, || async {
        connection_pid().filter(|pid| *pid != old).map(|_| ())
    })
    .await;
    let (_, accepted) = stack.send(&email_to("after@example.com", "Ada")).await;
    let view = stack.wait_completed(accepted["id"].as_str().unwrap()).await;
    assert_eq!(view["deliveries"][0]["status"], "delivered");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_whose_database_goes_away_pauses_and_resumes_without_spending_retries() {
    let stack = Stack::start().await;
    let relay = TcpRelay::start("127.0.0.1:5432").await;
    let relayed = stack
        .database_url
        .replace("127.0.0.1:5432", &format!("127.0.0.1:{}", relay.port));
    stack.stop_worker("notify-enrich").await;
    stack.start_worker_with("notify-enrich", &[("NOTIFY_DATABASE_URL", &relayed)]);
    stack.wait_ready("notify-enrich").await;
    let readyz = format!("{}/readyz", stack.metrics_url("notify-enrich").await);

    relay.cut();
    let mut ids = Vec::new();
    for i in 0..3 {
        let (status, accepted) = stack
            .send(&email_to(&format!("outage{i}@example.com"), "O"))
            .await;
        assert_eq!(status, 202, "ingest has its own connection: {accepted}");
        ids.push(accepted["id"].as_str().unwrap().to_owned());
    }
    let report = wait_until("enrich to say it is not ready", DEADLINE, || async {
        let r = stack.client.get(&readyz).send().await.ok()?;
        let body: Value = r.json().await.ok()?;
        (body["database"] == false && body["ready"] == false).then_some(body)
    })
    .await;
    assert_eq!(report["broker"], true, "{report}");

    relay.restore();
    for id in &ids {
        let view = stack.wait_completed(id).await;
        assert_eq!(view["deliveries"][0]["status"], "delivered", "{view}");
    }
    let retried = stack
        .metric("notify-enrich", "notify_messages_retried_total", &[])
        .await;
    let parked = stack
        .metric("notify-enrich", "notify_messages_parked_total", &[])
        .await;
    assert_eq!(
        (retried, parked),
        (0.0, 0.0),
        "an outage spends no retries and parks nothing"
    );
    assert_eq!(
        stack
            .smtp
            .wait_for_messages(3, DEADLINE)
            .await
            .unwrap()
            .len(),
        3
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claims_of_one_delivery_gathered_into_one_statement_give_it_to_one_message() {
    let stack = Stack::start().await;
    let tenant = notify_core::TenantId(stack.tenant.id.parse().unwrap());
    let notification = uuid::Uuid::new_v4();
    let delivery = uuid::Uuid::new_v4();
    sqlx::query(
        "INSERT INTO notifications (id, tenant_id, request, priority, delivery_count)
         VALUES ($1, $2, '{}', 'normal', 1)",
    )
    .bind(notification)
    .bind(tenant.0)
    .execute(&stack.db)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO deliveries (id, tenant_id, notification_id, recipient_index, channel)
         VALUES ($1, $2, $3, 0, 'email')",
    )
    .bind(delivery)
    .bind(tenant.0)
    .bind(notification)
    .execute(&stack.db)
    .await
    .unwrap();

    // Twenty messages carrying the same delivery, claimed at once: they queue up before the
    // first group is written, so they meet in one statement.
    let store = notify_store::Store::from_pool(stack.db.clone());
    let ids = [notify_core::DeliveryId(delivery)];
    let messages: Vec<uuid::Uuid> = (0..20).map(|_| uuid::Uuid::new_v4()).collect();
    let claims = messages
        .iter()
        .map(|m| store.claim(tenant, &ids, *m, "smtp"));
    let claimed = futures_util::future::join_all(claims).await;
    let winners: Vec<usize> = claimed
        .iter()
        .enumerate()
        .filter(|(_, c)| !c.as_ref().unwrap().is_empty())
        .map(|(i, _)| i)
        .collect();
    assert_eq!(winners.len(), 1, "{claimed:?}");
    assert_eq!(stack.count("SELECT count(*) FROM attempts").await, 1);

    // A loser's outcome changes nothing; the winner's is recorded.
    let outcome = |status| notify_store::Outcome {
        id: ids[0],
        attempt: 1,
        status,
        error: None,
        provider: Some("smtp".into()),
    };
    let loser = messages[(winners[0] + 1) % messages.len()];
    store
        .record_outcomes(
            tenant,
            loser,
            &[outcome(notify_core::DeliveryStatus::Failed)],
        )
        .await
        .unwrap();
    let status = || async {
        sqlx::query_scalar::<_, String>("SELECT status FROM deliveries WHERE id = $1")
            .bind(delivery)
            .fetch_one(&stack.db)
            .await
            .unwrap()
    };
    assert_eq!(status().await, "sending");
    store
        .record_outcomes(
            tenant,
            messages[winners[0]],
            &[outcome(notify_core::DeliveryStatus::Delivered)],
        )
        .await
        .unwrap();
    assert_eq!(status().await, "delivered");
}
