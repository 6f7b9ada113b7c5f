//! Time: `send_at` and channel delays released once by several schedulers, a scheduler killed
//! mid-release, quiet hours, escalation stopped by an acknowledgment, digests, cancellation,
//! the sweep for unpublished work, and retention.

use std::collections::HashSet;

use chrono::{Duration, Utc};
use serde_json::{Value, json};

use notify_e2e::{DEADLINE, Options, SECOND_SCHEDULER, Stack, email_to, wait_until};

fn in_seconds(s: f64) -> String {
    (Utc::now() + Duration::milliseconds((s * 1000.0) as i64)).to_rfc3339()
}

async fn timers(stack: &Stack, status: &str) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM timers WHERE status = $1")
        .bind(status.to_owned())
        .fetch_one(&stack.db)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delayed_work_fires_once_across_two_schedulers() {
    let stack = Stack::start_with(Options {
        two_schedulers: true,
        ..Options::default()
    })
    .await;

    let mut ids = Vec::new();
    for i in 0..10 {
        let mut body = email_to(&format!("later{i}@example.com"), "L");
        body["send_at"] = json!(in_seconds(5.0));
        let (status, accepted) = stack.send(&body).await;
        assert_eq!(status, 202, "{accepted}");
        assert_eq!(accepted["status"], "scheduled");
        ids.push(accepted["id"].as_str().unwrap().to_owned());
    }
    let mut delayed = email_to("delayed@example.com", "D");
    delayed["channels"][0]["config"] = json!({"delay_minutes": 0.03});
    let (_, accepted) = stack.send(&delayed).await;
    let delayed_id = accepted["id"].as_str().unwrap().to_owned();

    let (_, early) = stack
        .get(&format!("/v1/notifications/{}", ids[0]), &stack.tenant.key)
        .await;
    assert_eq!(early["status"], "scheduled", "{early}");
    assert!(
        stack.smtp.messages().is_empty(),
        "nothing goes before its time"
    );
    let held = wait_until("the delayed delivery to be written", DEADLINE, || async {
        let (_, v) = stack
            .get(
                &format!("/v1/notifications/{delayed_id}"),
                &stack.tenant.key,
            )
            .await;
        (v["deliveries"][0]["status"] == "scheduled").then_some(v)
    })
    .await;
    assert!(held["deliveries"][0]["scheduled_for"].is_string());

    for id in ids.iter().chain([&delayed_id]) {
        let view = stack.wait_completed(id).await;
        assert_eq!(view["deliveries"][0]["status"], "delivered", "{view}");
        assert_eq!(view["deliveries"][0]["attempts"], 1);
    }
    let mails = stack.smtp.wait_for_messages(11, DEADLINE).await.unwrap();
    let unique: HashSet<Option<String>> = mails.iter().map(|m| m.message_id()).collect();
    assert_eq!((mails.len(), unique.len()), (11, 11));
    assert_eq!(timers(&stack, "fired").await, 11);
    let released = stack
        .metric("notify-scheduler", "notify_messages_published_total", &[])
        .await
        + stack
            .metric(SECOND_SCHEDULER, "notify_messages_published_total", &[])
            .await;
    assert_eq!(
        released, 11.0,
        "each timer released once between the two schedulers"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scheduler_killed_while_releasing_leaves_nothing_behind() {
    let stack = Stack::start_with(Options {
        scheduler_batch: 1,
        ..Options::default()
    })
    .await;
    const N: usize = 100;
    let send_at = in_seconds(5.0);
    let items: Vec<Value> = (0..N)
        .map(|i| {
            let mut body = email_to(&format!("due{i}@example.com"), "D");
            body["send_at"] = json!(send_at);
            body
        })
        .collect();
    let (status, body) = stack
        .post(
            "/v1/notifications/batch",
            &stack.tenant.key,
            &json!({"notifications": items}),
        )
        .await;
    assert_eq!(status, 202, "{body}");

    wait_until("the scheduler to be releasing", DEADLINE, || async {
        (timers(&stack, "fired").await >= 3).then_some(())
    })
    .await;
    stack.kill_worker("notify-scheduler").await;
    assert!(
        timers(&stack, "pending").await > 0,
        "the kill came mid-release"
    );
    stack.start_worker("notify-scheduler");

    let mails = stack.smtp.wait_for_messages(N, DEADLINE).await.unwrap();
    wait_until("every timer to fire", DEADLINE, || async {
        (timers(&stack, "pending").await == 0).then_some(())
    })
    .await;
    let completed = wait_until("every delivery to be final", DEADLINE, || async {
        let n: i64 = stack
            .count("SELECT count(*) FROM deliveries WHERE status = 'delivered'")
            .await;
        (n as usize == N).then_some(n)
    })
    .await;
    assert_eq!(completed as usize, N);
    let unique: HashSet<Option<String>> = stack
        .smtp
        .messages()
        .iter()
        .map(|m| m.message_id())
        .collect();
    assert_eq!(
        (mails.len().max(stack.smtp.messages().len()), unique.len()),
        (N, N),
        "each sent exactly once"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quiet_hours_hold_a_normal_notification_and_let_a_critical_one_through() {
    let stack = Stack::start().await;
    let berlin = Utc::now().with_timezone(&chrono_tz::Europe::Berlin);
    let start = (berlin - Duration::hours(1)).format("%H:%M").to_string();
    let end = (berlin + Duration::hours(2)).format("%H:%M").to_string();
    let profile = json!({"email": "sleepy@example.com", "timezone": "Europe/Berlin",
                         "quiet_hours": {"start": start, "end": end}, "metadata": {"first_name": "Sam"}});
    let r = stack
        .client
        .put(format!("{}/v1/recipients/usr_sleepy", stack.http))
        .bearer_auth(&stack.tenant.key)
        .json(&profile)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let bad = json!({"quiet_hours": {"start": "22:00", "end": "7am"}});
    let r = stack
        .client
        .put(format!("{}/v1/recipients/usr_other", stack.http))
        .bearer_auth(&stack.tenant.key)
        .json(&bad)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);

    let note = |priority: &str| {
        json!({"title": "Hi {{recipient.first_name}}", "content": priority, "priority": priority,
               "recipients": [{"user_id": "usr_sleepy"}], "channels": [{"type": "email"}]})
    };
    let (_, normal) = stack.send(&note("normal")).await;
    let (_, critical) = stack.send(&note("critical")).await;

    let view = stack.wait_completed(critical["id"].as_str().unwrap()).await;
    assert_eq!(view["deliveries"][0]["status"], "delivered");
    let held = wait_until("the normal one to be held", DEADLINE, || async {
        let (_, v) = stack
            .get(
                &format!("/v1/notifications/{}", normal["id"].as_str().unwrap()),
                &stack.tenant.key,
            )
            .await;
        (v["deliveries"][0]["status"] == "scheduled").then_some(v)
    })
    .await;
    let release: chrono::DateTime<Utc> = held["deliveries"][0]["scheduled_for"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let expected = (berlin + Duration::hours(2)).format("%H:%M").to_string();
    assert_eq!(
        release
            .with_timezone(&chrono_tz::Europe::Berlin)
            .format("%H:%M")
            .to_string(),
        expected
    );
    let mails = stack.smtp.wait_for_messages(1, DEADLINE).await.unwrap();
    assert_eq!(mails.len(), 1);
    assert_eq!(mails[0].text_body().as_deref(), Some("critical"));

    // Cancelling the held one ends it without sending.
    let id = normal["id"].as_str().unwrap();
    let r = stack
        .client
        .delete(format!("{}/v1/notifications/{id}", stack.http))
        .bearer_auth(&stack.tenant.key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["cancelled"]["deliveries"], 1, "{body}");
    let (_, view) = stack
        .get(&format!("/v1/notifications/{id}"), &stack.tenant.key)
        .await;
    assert_eq!(view["status"], "cancelled", "{view}");
    assert_eq!(view["deliveries"][0]["status"], "suppressed");
    assert_eq!(view["deliveries"][0]["last_error"], "cancelled");
    assert_eq!(timers(&stack, "cancelled").await, 1);
}

fn incident(tag: &str) -> Value {
    json!({
        "title": "[{{metadata.severity}}] {{metadata.service}} is down",
        "content": "{{recipient.first_name}}, {{metadata.service}} fails its health checks ({{metadata.tag}}).",
        "priority": "critical",
        "category": "incident",
        "recipients": [
            {"user_id": "dev", "email": "dev@example.com", "role": "developer", "metadata": {"first_name": "Dana"}},
            {"user_id": "ops", "email": "ops@example.com", "role": "devops", "metadata": {"first_name": "Olu"}},
            {"user_id": "boss", "email": "boss@example.com", "role": "manager", "metadata": {"first_name": "Mia"}}
        ],
        "channels": [{"type": "email"}],
        "metadata": {"severity": "P1", "service": "payments", "tag": tag},
        "escalation": {"levels": [
            {"level": 1, "delay_minutes": 0, "target_roles": ["developer", "devops"]},
            {"level": 2, "delay_minutes": 0.15, "target_roles": ["manager"], "condition": "no_acknowledgment"}
        ]}
    })
}

/// Incident mails (not the sentinel) to one address for one of the two incidents.
fn mails_for(stack: &Stack, to: &str, tag: &str) -> usize {
    stack
        .smtp
        .messages()
        .iter()
        .filter(|m| m.to == [to] && m.subject().is_some_and(|s| s.starts_with("[P1]")))
        .filter(|m| {
            m.text_body()
                .is_some_and(|b| b.contains(&format!("({tag})")))
        })
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_escalation_reaches_the_manager_only_when_nobody_acknowledges() {
    let stack = Stack::start().await;
    let (_, ignored) = stack.send(&incident("ignored")).await;
    let (_, handled) = stack.send(&incident("handled")).await;
    let (ignored, handled) = (
        ignored["id"].as_str().unwrap().to_owned(),
        handled["id"].as_str().unwrap().to_owned(),
    );

    // Level 1 goes at once to the developer and the devops engineer, each with their name.
    wait_until("level 1 of both incidents", DEADLINE, || async {
        (stack.smtp.messages().len() >= 4).then_some(())
    })
    .await;
    for tag in ["ignored", "handled"] {
        assert_eq!(mails_for(&stack, "dev@example.com", tag), 1);
        assert_eq!(mails_for(&stack, "ops@example.com", tag), 1);
    }
    let dana = stack
        .smtp
        .messages()
        .into_iter()
        .find(|m| m.to == ["dev@example.com"])
        .unwrap();
    assert_eq!(dana.subject().as_deref(), Some("[P1] payments is down"));
    assert!(
        dana.text_body()
            .unwrap()
            .starts_with("Dana, payments fails")
    );
    assert_eq!(
        mails_for(&stack, "boss@example.com", "ignored")
            + mails_for(&stack, "boss@example.com", "handled"),
        0
    );

    let r = stack
        .client
        .post(format!(
            "{}/v1/notifications/{handled}/acknowledge",
            stack.http
        ))
        .bearer_auth(&stack.tenant.key)
        .json(&json!({"by": "dev"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let view: Value = r.json().await.unwrap();
    assert_eq!(view["escalation"]["state"], "acknowledged", "{view}");
    assert_eq!(view["escalation"]["acknowledged_by"], "dev");
    assert_eq!(view["escalation"]["levels"][1]["status"], "cancelled");
    let other = stack.create_tenant("umbrella");
    let r = stack
        .client
        .post(format!(
            "{}/v1/notifications/{handled}/acknowledge",
            stack.http
        ))
        .bearer_auth(&other.key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);

    // The unacknowledged one reaches the manager after its delay.
    wait_until("level 2 of the ignored incident", DEADLINE, || async {
        (mails_for(&stack, "boss@example.com", "ignored") == 1).then_some(())
    })
    .await;
    let view = stack.wait_completed(&ignored).await;
    assert_eq!(view["escalation"]["state"], "exhausted", "{view}");
    assert_eq!(view["escalation"]["levels"][1]["status"], "sent");
    assert_eq!(view["escalation"]["levels"][1]["deliveries"], 1);

    // A sentinel due after level 2 would have been due: once it arrives, the scheduler has
    // passed that moment, and the acknowledged level never sent.
    let mut sentinel = email_to("boss@example.com", "Mia");
    sentinel["content"] = json!("sentinel handled");
    sentinel["send_at"] = json!(in_seconds(10.0));
    stack.send(&sentinel).await;
    wait_until("the sentinel", DEADLINE, || async {
        let got = stack
            .smtp
            .messages()
            .iter()
            .any(|m| m.text_body().as_deref() == Some("sentinel handled"));
        got.then_some(())
    })
    .await;
    assert_eq!(
        mails_for(&stack, "boss@example.com", "handled"),
        0,
        "the acknowledged level never sent"
    );
    let (_, handled_view) = stack
        .get(&format!("/v1/notifications/{handled}"), &stack.tenant.key)
        .await;
    assert_eq!(handled_view["escalation"]["levels"][1]["deliveries"], 0);
    assert_eq!(handled_view["status"], "completed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_digest_of_many_events_in_the_same_second_is_one_message_holding_all_of_them() {
    let stack = Stack::start().await;
    const N: usize = 25;
    let items: Vec<Value> = (0..N)
        .map(|i| {
            json!({
                "title": "{{digest.count}} new comments",
                "content": "{{#each digest.items}}[{{this.metadata.author}}]{{/each}}",
                "recipients": [{"user_id": "usr_reader", "email": "reader@example.com"}],
                "channels": [{"type": "email"}],
                "metadata": {"author": format!("a{i}")},
                "digest": {"key": "comments", "window_seconds": 2}
            })
        })
        .collect();
    // Half in one batch, half as concurrent single requests.
    let (first, rest) = items.split_at(N / 2);
    let first = json!({"notifications": first});
    let batch = stack.post("/v1/notifications/batch", &stack.tenant.key, &first);
    let singles = futures_util::future::join_all(rest.iter().map(|b| stack.send(b)));
    let ((status, _), answers) = tokio::join!(batch, singles);
    assert_eq!(status, 202);
    assert!(answers.iter().all(|(s, _)| *s == 202));

    let mails = stack.smtp.wait_for_messages(1, DEADLINE).await.unwrap();
    let mail = &mails[0];
    assert_eq!(
        mail.subject().as_deref(),
        Some(format!("{N} new comments").as_str())
    );
    let text = mail.text_body().unwrap();
    for i in 0..N {
        assert!(
            text.contains(&format!("[a{i}]")),
            "a{i} missing from {text}"
        );
    }
    wait_until("every event to be final", DEADLINE, || async {
        let open: i64 = stack
            .count("SELECT count(*) FROM deliveries WHERE finished_at IS NULL")
            .await;
        (open == 0).then_some(())
    })
    .await;
    assert_eq!(stack.count("SELECT count(*) FROM digests").await, 1);
    assert_eq!(
        stack
            .count("SELECT count(*) FROM deliveries WHERE status = 'delivered'")
            .await,
        1
    );
    assert_eq!(
        stack
            .count("SELECT count(*) FROM deliveries WHERE status = 'suppressed'")
            .await,
        (N - 1) as i64
    );
    assert_eq!(stack.smtp.messages().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_notification_sends_nothing() {
    let stack = Stack::start().await;
    let mut body = email_to("never@example.com", "N");
    body["send_at"] = json!(in_seconds(8.0));
    let (_, accepted) = stack.send(&body).await;
    let id = accepted["id"].as_str().unwrap().to_owned();

    let other = stack.create_tenant("hooli");
    let r = stack
        .client
        .delete(format!("{}/v1/notifications/{id}", stack.http))
        .bearer_auth(&other.key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let r = stack
        .client
        .delete(format!("{}/v1/notifications/{id}", stack.http))
        .bearer_auth(&stack.tenant.key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let (_, view) = stack
        .get(&format!("/v1/notifications/{id}"), &stack.tenant.key)
        .await;
    assert_eq!(view["status"], "cancelled");

    let mut sentinel = email_to("never@example.com", "N");
    sentinel["content"] = json!("sentinel");
    sentinel["send_at"] = json!(in_seconds(9.0));
    stack.send(&sentinel).await;
    let mails = stack.smtp.wait_for_messages(1, DEADLINE).await.unwrap();
    assert_eq!(mails[0].text_body().as_deref(), Some("sentinel"));
    assert_eq!(
        stack.count("SELECT count(*) FROM deliveries").await,
        1,
        "the cancelled one never fanned out"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_notification_committed_but_never_published_is_swept_up() {
    let stack = Stack::start().await;
    let request = json!({
        "title": "Lost and found", "content": "Found you.", "priority": "normal",
        "recipients": [{"email": "found@example.com"}],
        "channels": [{"type": "email", "config": {}}]
    });
    let id = uuid::Uuid::new_v4();
    sqlx::query(
        "INSERT INTO notifications (id, tenant_id, request, priority, delivery_count, created_at)
         VALUES ($1, $2::uuid, $3, 'normal', 1, now() - interval '1 minute')",
    )
    .bind(id)
    .bind(&stack.tenant.id)
    .bind(&request)
    .execute(&stack.db)
    .await
    .unwrap();

    let view = stack.wait_completed(&id.to_string()).await;
    assert_eq!(view["deliveries"][0]["status"], "delivered");
    let mails = stack.smtp.wait_for_messages(1, DEADLINE).await.unwrap();
    assert_eq!(mails[0].subject().as_deref(), Some("Lost and found"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notifications_past_their_tenants_retention_are_deleted() {
    let stack = Stack::start().await;
    let mut ids = Vec::new();
    for i in 0..3 {
        let (_, accepted) = stack
            .send(&email_to(&format!("old{i}@example.com"), "O"))
            .await;
        ids.push(accepted["id"].as_str().unwrap().to_owned());
    }
    for id in &ids {
        stack.wait_completed(id).await;
    }
    let out = stack.notifyctl(&["tenant", "retention", "acme", "--days", "7"]);
    assert!(out.contains("7 days"), "{out}");
    sqlx::query("UPDATE notifications SET created_at = now() - interval '8 days' WHERE id = ANY($1::uuid[])")
        .bind(&ids[..2])
        .execute(&stack.db)
        .await
        .unwrap();

    wait_until("the old notifications to go", DEADLINE, || async {
        (stack.count("SELECT count(*) FROM notifications").await == 1).then_some(())
    })
    .await;
    assert_eq!(stack.count("SELECT count(*) FROM deliveries").await, 1);
    assert_eq!(stack.count("SELECT count(*) FROM attempts").await, 1);
    let (status, _) = stack
        .get(&format!("/v1/notifications/{}", ids[0]), &stack.tenant.key)
        .await;
    assert_eq!(status, 404);
    let (status, _) = stack
        .get(&format!("/v1/notifications/{}", ids[2]), &stack.tenant.key)
        .await;
    assert_eq!(status, 200);
}
