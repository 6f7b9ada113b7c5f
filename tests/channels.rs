//! The SMS, Slack, Teams and push channels end to end, each against a local mock of its
//! provider that checks requests the way the real API does: the request shape, a permanent
//! error, a transient error followed by success, and a rate-limit answer with `Retry-After`;
//! then a breaker that opens and fails over to the second provider, a channel failover from
//! push to SMS after an unregistered token, and an incident alert on four channels at once.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use notify_e2e::{DEADLINE, Options, Stack, wait_until};
use notify_testkit::apns::{self, ApnsMock};
use notify_testkit::fcm::FcmMock;
use notify_testkit::mock::Response;
use notify_testkit::slack::SlackMock;
use notify_testkit::teams::TeamsMock;
use notify_testkit::twilio::TwilioMock;

const SMS: &str = "notify-deliver-sms";
const SLACK: &str = "notify-deliver-slack";
const TEAMS: &str = "notify-deliver-teams";
const PUSH: &str = "notify-deliver-push";

fn twilio_entry(name: &str, mock: &TwilioMock) -> Value {
    json!({
        "name": name, "base_url": mock.url(), "account_sid": mock.account_sid,
        "auth_token": mock.auth_token, "from": "+15005550006",
    })
}

fn fcm_entry(mock: &FcmMock) -> Value {
    json!({"kind": "fcm", "base_url": mock.url(), "service_account": mock.service_account()})
}

fn apns_entry(mock: &ApnsMock) -> Value {
    json!({
        "kind": "apns", "base_url": mock.url(), "team_id": apns::TEAM_ID, "key_id": apns::KEY_ID,
        "private_key": apns::TEST_KEY_PEM, "topic": mock.topic,
    })
}

/// Sends and returns the notification's id.
async fn send(stack: &Stack, body: &Value) -> String {
    let (status, accepted) = stack.send(body).await;
    assert_eq!(status, 202, "{accepted}");
    accepted["id"].as_str().unwrap().to_owned()
}

/// The one delivery of a notification, once it is final.
async fn only_delivery(stack: &Stack, id: &str) -> Value {
    let view = stack.wait_completed(id).await;
    assert_eq!(view["deliveries"].as_array().unwrap().len(), 1, "{view}");
    view["deliveries"][0].clone()
}

fn sms_to(phone: &str, content: &str, config: Value) -> Value {
    json!({
        "content": content,
        "recipients": [{"user_id": "u1", "phone": phone, "metadata": {"first_name": "Maria"}}],
        "channels": [{"type": "sms", "config": config}],
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sms_goes_to_twilio_as_a_form_and_its_errors_are_retried_failed_or_waited_out() {
    let twilio = TwilioMock::start("AC0123456789abcdef0123456789abcdef", "secret-token")
        .await
        .unwrap();
    let providers = json!([twilio_entry("twilio", &twilio)]).to_string();
    let stack = Stack::start_with(
        Options {
            retry_tiers: "200ms,1s,2s",
            ..Options::default()
        }
        .with_workers(&[SMS])
        .with_env("NOTIFY_SMS_PROVIDERS", providers),
    )
    .await;

    // The request shape: form fields, the unsubscribe line, a cut on a character boundary.
    let long = "Hallo {{recipient.first_name}}, Ihr Paket ist unterwegs. ".repeat(10);
    let config = json!({"max_length": 160, "include_unsubscribe": true});
    let id = send(&stack, &sms_to("+49176123456789", &long, config)).await;
    let delivery = only_delivery(&stack, &id).await;
    assert_eq!(delivery["status"], "delivered", "{delivery}");
    assert_eq!(delivery["provider"], "twilio");
    let message = twilio.messages().remove(0);
    assert_eq!(message.to, "+49176123456789");
    assert_eq!(message.from, "+15005550006");
    assert!(
        message.body.starts_with("Hallo Maria, Ihr Paket"),
        "{}",
        message.body
    );
    assert!(
        message.body.ends_with("...\nReply STOP to unsubscribe."),
        "{}",
        message.body
    );
    assert_eq!(message.body.chars().count(), 160);

    // A permanent error fails the delivery at once.
    twilio.script([TwilioMock::error(
        400,
        21610,
        "Attempt to send to unsubscribed recipient",
    )]);
    let id = send(&stack, &sms_to("+4915112345678", "Hi", json!({}))).await;
    let delivery = only_delivery(&stack, &id).await;
    assert_eq!(delivery["status"], "failed", "{delivery}");
    assert_eq!(delivery["attempts"], 1);
    assert!(
        delivery["last_error"].as_str().unwrap().contains("21610"),
        "{delivery}"
    );

    // A transient error is retried, then succeeds.
    twilio.script([TwilioMock::error(503, 20503, "Service unavailable")]);
    let id = send(&stack, &sms_to("+4915112345679", "Hi", json!({}))).await;
    let delivery = only_delivery(&stack, &id).await;
    assert_eq!(delivery["status"], "delivered", "{delivery}");
    assert_eq!(delivery["attempts"], 2);

    // A rate limit waits the tier that covers Retry-After (1 s), without failing.
    let before = twilio.requests().len();
    twilio.script([TwilioMock::too_many_requests(1)]);
    let id = send(&stack, &sms_to("+4915112345670", "Hi", json!({}))).await;
    twilio
        .wait_for_requests(before + 1, DEADLINE)
        .await
        .unwrap();
    let limited_at = Instant::now();
    let delivery = only_delivery(&stack, &id).await;
    assert_eq!(delivery["status"], "delivered", "{delivery}");
    assert!(
        limited_at.elapsed() >= Duration::from_millis(900),
        "retried after {:?}, before the provider's Retry-After",
        limited_at.elapsed()
    );
    assert_eq!(twilio.statuses()[before..], [429, 201]);
}

fn slack_to(config: Value) -> Value {
    json!({
        "title": "Deploy of {{metadata.service}} finished",
        "content": "Hi {{recipient.first_name}}: build <42> & tests passed",
        "recipients": [{"user_id": "u1", "slack_id": "U0123ABCD", "metadata": {"first_name": "Ana"}}],
        "channels": [{"type": "slack", "config": config}],
        "metadata": {"service": "billing"},
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slack_gets_block_kit_with_escaped_mrkdwn_and_its_error_strings_are_handled() {
    let slack = SlackMock::start("xoxb-test-token").await.unwrap();
    let providers = json!([{"base_url": slack.api_url(), "bot_token": slack.bot_token}]);
    let stack = Stack::start_with(
        Options {
            retry_tiers: "200ms,1s,2s",
            ..Options::default()
        }
        .with_workers(&[SLACK])
        .with_env("NOTIFY_SLACK_PROVIDERS", providers.to_string()),
    )
    .await;

    // Into a channel's thread, mentioning the recipient, with the text escaped.
    let config = json!({"channel": "C0INCIDENTS", "mention_users": true,
                        "thread_ts": "1700000000.000100"});
    let id = send(&stack, &slack_to(config)).await;
    let delivery = only_delivery(&stack, &id).await;
    assert_eq!(delivery["status"], "delivered", "{delivery}");
    let posted = slack.messages().remove(0);
    assert_eq!(posted["channel"], "C0INCIDENTS");
    assert_eq!(posted["thread_ts"], "1700000000.000100");
    assert_eq!(posted["blocks"][0]["type"], "header");
    assert_eq!(
        posted["blocks"][0]["text"]["text"],
        "Deploy of billing finished"
    );
    assert_eq!(
        posted["blocks"][1]["text"]["text"],
        "<@U0123ABCD> Hi Ana: build &lt;42&gt; &amp; tests passed"
    );

    // A direct message without a mention goes to the member id.
    let id = send(&stack, &slack_to(json!({}))).await;
    only_delivery(&stack, &id).await;
    let posted = slack.messages().pop().unwrap();
    assert_eq!(posted["channel"], "U0123ABCD");
    assert!(posted.get("thread_ts").is_none());

    // `ok: false` with a final error fails the delivery.
    slack.script([SlackMock::error("channel_not_found")]);
    let id = send(&stack, &slack_to(json!({"channel": "C0GONE"}))).await;
    let delivery = only_delivery(&stack, &id).await;
    assert_eq!(delivery["status"], "failed", "{delivery}");
    assert!(
        delivery["last_error"]
            .as_str()
            .unwrap()
            .contains("channel_not_found")
    );

    // `internal_error` is retried, then succeeds.
    slack.script([SlackMock::error("internal_error")]);
    let id = send(&stack, &slack_to(json!({}))).await;
    let delivery = only_delivery(&stack, &id).await;
    assert_eq!(
        (delivery["status"].as_str(), delivery["attempts"].as_i64()),
        (Some("delivered"), Some(2))
    );

    // A 429 waits for its Retry-After.
    let before = slack.requests().len();
    slack.script([SlackMock::rate_limited(1)]);
    let id = send(&stack, &slack_to(json!({}))).await;
    slack.wait_for_requests(before + 1, DEADLINE).await.unwrap();
    let limited_at = Instant::now();
    let delivery = only_delivery(&stack, &id).await;
    assert_eq!(delivery["status"], "delivered", "{delivery}");
    assert!(limited_at.elapsed() >= Duration::from_millis(900));
    assert_eq!(slack.statuses()[before..], [429, 200]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn teams_gets_an_adaptive_card_and_its_errors_are_retried_failed_or_waited_out() {
    let teams = TeamsMock::start().await.unwrap();
    let stack = Stack::start_with(
        Options {
            retry_tiers: "200ms,1s,2s",
            ..Options::default()
        }
        .with_workers(&[TEAMS]),
    )
    .await;
    let alert = json!({
        "title": "Latency of {{metadata.service}} is high",
        "content": "p99 is {{metadata.p99}} ms",
        "recipients": [{"user_id": "oncall"}],
        "channels": [{"type": "teams", "config": {
            "webhook_url": format!("{}/webhookb2/abc/IncomingWebhook/def", teams.url()),
            "actions": [{"title": "Open dashboard", "url": "https://grafana.example.com/d/latency"}]
        }}],
        "metadata": {"service": "checkout", "p99": 870},
    });

    let id = send(&stack, &alert).await;
    let delivery = only_delivery(&stack, &id).await;
    assert_eq!(delivery["status"], "delivered", "{delivery}");
    let request = teams.accepted().remove(0);
    assert_eq!(request.path, "/webhookb2/abc/IncomingWebhook/def");
    let card = teams.cards().remove(0);
    assert_eq!(card["type"], "AdaptiveCard");
    assert_eq!(card["body"][0]["text"], "Latency of checkout is high");
    assert_eq!(card["body"][1]["text"], "p99 is 870 ms");
    assert_eq!(
        card["actions"][0]["url"],
        "https://grafana.example.com/d/latency"
    );

    teams.script([Response::status(400).body("Bad payload received by generic incoming webhook.")]);
    let delivery = only_delivery(&stack, &send(&stack, &alert).await).await;
    assert_eq!(
        (delivery["status"].as_str(), delivery["attempts"].as_i64()),
        (Some("failed"), Some(1))
    );

    teams.script([Response::status(502)]);
    let delivery = only_delivery(&stack, &send(&stack, &alert).await).await;
    assert_eq!(
        (delivery["status"].as_str(), delivery["attempts"].as_i64()),
        (Some("delivered"), Some(2))
    );

    let before = teams.requests().len();
    teams.script([Response::status(429).header("retry-after", "1")]);
    let id = send(&stack, &alert).await;
    teams.wait_for_requests(before + 1, DEADLINE).await.unwrap();
    let limited_at = Instant::now();
    assert_eq!(only_delivery(&stack, &id).await["status"], "delivered");
    assert!(limited_at.elapsed() >= Duration::from_millis(900));
}

fn push_to(tokens: &[&str]) -> Value {
    json!({
        "title": "Welcome, {{recipient.first_name}}",
        "content": "Your account is ready.",
        "recipients": [{"user_id": "u1", "push_tokens": tokens, "metadata": {"first_name": "Maria"}}],
        "channels": [{"type": "push", "config": {
            "badge_count": 1, "sound": "default", "deep_link": "techcorp://welcome",
            "data": {"campaign": "welcome_2024_q1"}
        }}],
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_signs_in_to_fcm_once_and_sends_to_apns_over_http2_with_errors_handled() {
    let fcm = FcmMock::start("notify-test").await.unwrap();
    let apns = ApnsMock::start("com.techcorp.app").await.unwrap();
    let providers = json!([fcm_entry(&fcm), apns_entry(&apns)]).to_string();
    let stack = Stack::start_with(
        Options {
            retry_tiers: "200ms,1s,2s",
            ..Options::default()
        }
        .with_workers(&[PUSH])
        .with_env("NOTIFY_PUSH_PROVIDERS", providers),
    )
    .await;

    // FCM: title, body, badge, sound, deep link and data.
    let id = send(&stack, &push_to(&["fcm-token-1"])).await;
    let delivery = only_delivery(&stack, &id).await;
    assert_eq!(
        (delivery["status"].as_str(), delivery["provider"].as_str()),
        (Some("delivered"), Some("fcm"))
    );
    let message = fcm.messages().remove(0);
    assert_eq!(message["token"], "fcm-token-1");
    assert_eq!(message["notification"]["title"], "Welcome, Maria");
    assert_eq!(message["notification"]["body"], "Your account is ready.");
    assert_eq!(message["data"]["deep_link"], "techcorp://welcome");
    assert_eq!(message["data"]["campaign"], "welcome_2024_q1");
    assert_eq!(message["apns"]["payload"]["aps"]["badge"], 1);
    assert_eq!(message["android"]["notification"]["sound"], "default");

    // APNs, over HTTP/2, for a device token.
    let device = "a1".repeat(32);
    let id = send(&stack, &push_to(&[&device])).await;
    let delivery = only_delivery(&stack, &id).await;
    assert_eq!(
        (delivery["status"].as_str(), delivery["provider"].as_str()),
        (Some("delivered"), Some("apns"))
    );
    let (token, payload) = apns.notifications().remove(0);
    assert_eq!(token, device);
    assert_eq!(payload["aps"]["alert"]["title"], "Welcome, Maria");
    assert_eq!(payload["aps"]["badge"], 1);
    assert_eq!(payload["aps"]["sound"], "default");
    assert_eq!(payload["deep_link"], "techcorp://welcome");
    let request = apns.accepted().remove(0);
    assert_eq!(request.header("apns-id"), delivery["id"].as_str());

    // A refused payload fails; a 503 is retried; a quota answer waits for Retry-After.
    fcm.script([FcmMock::error(
        400,
        "INVALID_ARGUMENT",
        "Invalid registration",
    )]);
    let delivery = only_delivery(&stack, &send(&stack, &push_to(&["fcm-token-2"])).await).await;
    assert_eq!(
        (delivery["status"].as_str(), delivery["attempts"].as_i64()),
        (Some("failed"), Some(1))
    );
    fcm.script([FcmMock::error(
        503,
        "UNAVAILABLE",
        "The service is unavailable",
    )]);
    let delivery = only_delivery(&stack, &send(&stack, &push_to(&["fcm-token-3"])).await).await;
    assert_eq!(
        (delivery["status"].as_str(), delivery["attempts"].as_i64()),
        (Some("delivered"), Some(2))
    );
    let before = fcm.requests().len();
    fcm.script([FcmMock::quota_exceeded(1)]);
    let id = send(&stack, &push_to(&["fcm-token-4"])).await;
    fcm.wait_for_requests(before + 1, DEADLINE).await.unwrap();
    let limited_at = Instant::now();
    assert_eq!(only_delivery(&stack, &id).await["status"], "delivered");
    assert!(limited_at.elapsed() >= Duration::from_millis(900));

    // Every send used the one access token the worker signed in for.
    assert_eq!(
        fcm.oauth().accepted().len(),
        1,
        "{:?}",
        fcm.oauth().statuses()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_provider_opens_its_breaker_and_the_second_provider_takes_over_until_a_probe_succeeds()
 {
    let primary = TwilioMock::start("AC11111111111111111111111111111111", "one")
        .await
        .unwrap();
    let backup = TwilioMock::start("AC22222222222222222222222222222222", "two")
        .await
        .unwrap();
    let providers = json!([
        twilio_entry("twilio-primary", &primary),
        twilio_entry("twilio-backup", &backup)
    ]);
    let stack = Stack::start_with(
        Options::default()
            .with_workers(&[SMS])
            .with_env("NOTIFY_SMS_PROVIDERS", providers.to_string())
            .with_env("NOTIFY_BREAKER_FAILURES", "2")
            .with_env("NOTIFY_BREAKER_COOLDOWN", "1s"),
    )
    .await;
    primary.fail_with(Some(TwilioMock::error(500, 20500, "Internal Server Error")));

    for n in 0..4 {
        let id = send(
            &stack,
            &sms_to("+4915112340000", &format!("alert {n}"), json!({})),
        )
        .await;
        let delivery = only_delivery(&stack, &id).await;
        assert_eq!(delivery["status"], "delivered", "{delivery}");
        assert_eq!(delivery["provider"], "twilio-backup", "{delivery}");
        assert_eq!(
            delivery["attempts"], 1,
            "the failover happens within the attempt"
        );
    }
    assert_eq!(
        primary.requests().len(),
        2,
        "the open breaker kept the later sends away"
    );
    assert_eq!(backup.messages().len(), 4);
    let open = stack
        .metric(
            SMS,
            "notify_provider_breaker_state",
            &["provider=\"twilio-primary\""],
        )
        .await;
    assert_eq!(open, 1.0);
    let attempt_provider: String =
        sqlx::query_scalar("SELECT provider FROM attempts ORDER BY started_at DESC LIMIT 1")
            .fetch_one(&stack.db)
            .await
            .unwrap();
    assert_eq!(attempt_provider, "twilio-backup");

    // The primary recovers; after the cool-down a probe goes to it and closes the breaker.
    primary.fail_with(None);
    wait_until("a delivery through the primary again", DEADLINE, || async {
        let id = send(&stack, &sms_to("+4915112340000", "probe", json!({}))).await;
        let delivery = only_delivery(&stack, &id).await;
        (delivery["provider"] == "twilio-primary").then_some(())
    })
    .await;
    let closed = stack
        .metric(
            SMS,
            "notify_provider_breaker_state",
            &["provider=\"twilio-primary\""],
        )
        .await;
    assert_eq!(closed, 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unregistered_push_token_is_marked_dead_and_the_recipient_gets_an_sms_instead() {
    let fcm = FcmMock::start("notify-test").await.unwrap();
    let twilio = TwilioMock::start("AC0123456789abcdef0123456789abcdef", "secret-token")
        .await
        .unwrap();
    let stack = Stack::start_with(
        Options::default()
            .with_workers(&[SMS, PUSH])
            .with_env(
                "NOTIFY_PUSH_PROVIDERS",
                json!([fcm_entry(&fcm)]).to_string(),
            )
            .with_env(
                "NOTIFY_SMS_PROVIDERS",
                json!([twilio_entry("twilio", &twilio)]).to_string(),
            ),
    )
    .await;
    fcm.unregister("stale-token");
    let body = json!({
        "title": "Your order shipped",
        "content": "Order {{metadata.order}} is on its way, {{recipient.first_name}}.",
        "recipients": [{"user_id": "u1", "phone": "+49176123456789", "email": "m@example.com",
                        "push_tokens": ["stale-token"], "metadata": {"first_name": "Maria"}}],
        "channels": [{"type": "push"}, {"type": "sms"}, {"type": "email"}],
        "failover": ["push", "sms", "email"],
        "metadata": {"order": "A-1001"},
    });

    let (status, accepted) = stack.send(&body).await;
    assert_eq!(status, 202, "{accepted}");
    assert_eq!(
        accepted["deliveries"], 1,
        "only the first failover channel at first"
    );
    let id = accepted["id"].as_str().unwrap().to_owned();
    let sms = twilio.wait_for_accepted(1, DEADLINE).await.unwrap();
    let message = notify_testkit::twilio::message(&sms[0]);
    assert_eq!(message.body, "Order A-1001 is on its way, Maria.");

    let view = wait_until("the SMS delivery to be recorded", DEADLINE, || async {
        let view = stack.wait_completed(&id).await;
        let sms = view["deliveries"]
            .as_array()?
            .iter()
            .find(|d| d["channel"] == "sms")?
            .clone();
        (sms["status"] == "delivered").then_some(view)
    })
    .await;
    let deliveries = view["deliveries"].as_array().unwrap();
    assert_eq!(deliveries.len(), 2, "email was never needed: {view}");
    let push = deliveries.iter().find(|d| d["channel"] == "push").unwrap();
    assert_eq!(push["status"], "failed");
    assert!(
        push["last_error"]
            .as_str()
            .unwrap()
            .contains("no longer registered"),
        "{push}"
    );
    assert_eq!(
        fcm.requests().len(),
        1,
        "an unregistered token is not retried"
    );
    let dead: i64 = stack
        .count("SELECT count(*) FROM dead_push_tokens WHERE token = 'stale-token'")
        .await;
    assert_eq!(dead, 1);

    // The next notification skips the dead token without calling FCM.
    let second = send(&stack, &body).await;
    twilio.wait_for_accepted(2, DEADLINE).await.unwrap();
    assert_eq!(fcm.requests().len(), 1);
    let view = stack.wait_completed(&second).await;
    let push = view["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["channel"] == "push")
        .unwrap()
        .clone();
    assert!(
        push["last_error"]
            .as_str()
            .unwrap()
            .contains("no live push token"),
        "{push}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_incident_alert_reaches_three_people_on_call_on_sms_email_slack_and_push_at_once() {
    let twilio = TwilioMock::start("AC0123456789abcdef0123456789abcdef", "secret-token")
        .await
        .unwrap();
    let slack = SlackMock::start("xoxb-test-token").await.unwrap();
    let fcm = FcmMock::start("notify-test").await.unwrap();
    let apns = ApnsMock::start("com.techcorp.app").await.unwrap();
    let stack = Stack::start_with(
        Options::default()
            .with_workers(&[SMS, SLACK, PUSH])
            .with_env(
                "NOTIFY_SMS_PROVIDERS",
                json!([twilio_entry("twilio", &twilio)]).to_string(),
            )
            .with_env(
                "NOTIFY_SLACK_PROVIDERS",
                json!([{"base_url": slack.api_url(), "bot_token": slack.bot_token}]).to_string(),
            )
            .with_env(
                "NOTIFY_PUSH_PROVIDERS",
                json!([fcm_entry(&fcm), apns_entry(&apns)]).to_string(),
            ),
    )
    .await;
    let iphone = "b2".repeat(32);
    let people = [
        (
            "Ana",
            "+4915100000001",
            "ana@example.com",
            "U0000000A",
            "fcm-ana".to_owned(),
        ),
        (
            "Ben",
            "+4915100000002",
            "ben@example.com",
            "U0000000B",
            iphone.clone(),
        ),
        (
            "Cem",
            "+4915100000003",
            "cem@example.com",
            "U0000000C",
            "fcm-cem".to_owned(),
        ),
    ];
    let recipients: Vec<Value> = people
        .iter()
        .map(|(name, phone, email, slack_id, token)| json!({
            "user_id": name.to_lowercase(), "phone": phone, "email": email, "slack_id": slack_id,
            "push_tokens": [token], "role": "devops", "metadata": {"first_name": name},
        }))
        .collect();
    let alert = json!({
        "title": "SEV1: {{metadata.service}} is down",
        "content": "{{recipient.first_name}}, you are on call: {{metadata.service}} answers 503.",
        "priority": "critical",
        "category": "incident",
        "recipients": recipients,
        "channels": [
            {"type": "sms"},
            {"type": "email", "config": {"from_email": "alerts@techcorp.com"}},
            {"type": "slack", "config": {"mention_users": true}},
            {"type": "push", "config": {"sound": "critical.caf", "deep_link": "techcorp://incident/77"}}
        ],
        "metadata": {"service": "checkout"},
    });

    let id = send(&stack, &alert).await;
    let view = stack.wait_completed(&id).await;
    let deliveries = view["deliveries"].as_array().unwrap();
    assert_eq!(deliveries.len(), 12);
    assert!(
        deliveries.iter().all(|d| d["status"] == "delivered"),
        "{view}"
    );

    let texts = twilio.messages();
    let mails = stack.smtp.wait_for_messages(3, DEADLINE).await.unwrap();
    let posts = slack.messages();
    let fcm_messages = fcm.messages();
    let apns_notifications = apns.notifications();
    for (name, phone, email, slack_id, token) in &people {
        let line = format!("{name}, you are on call: checkout answers 503.");
        let sms = texts
            .iter()
            .find(|m| m.to == *phone)
            .expect("an SMS per person");
        assert_eq!(sms.body, line);
        let mail = mails
            .iter()
            .find(|m| m.to == [*email])
            .expect("an email per person");
        assert_eq!(mail.subject().as_deref(), Some("SEV1: checkout is down"));
        assert!(mail.text_body().unwrap().contains(&line));
        let post = posts
            .iter()
            .find(|p| p["channel"] == *slack_id)
            .expect("a Slack DM per person");
        assert_eq!(
            post["blocks"][1]["text"]["text"],
            format!("<@{slack_id}> {line}")
        );
        let body = if *token == iphone {
            let (_, payload) = apns_notifications
                .iter()
                .find(|(t, _)| t == token)
                .expect("APNs");
            payload["aps"]["alert"]["body"].clone()
        } else {
            let m = fcm_messages
                .iter()
                .find(|m| m["token"] == *token)
                .expect("FCM");
            m["notification"]["body"].clone()
        };
        assert_eq!(body, line.as_str());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_sends_through_its_own_provider_whose_credentials_are_sealed_and_never_shown() {
    let installation = TwilioMock::start("AC0123456789abcdef0123456789abcdef", "house-token")
        .await
        .unwrap();
    let own = TwilioMock::start("ACaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "acme-secret-token")
        .await
        .unwrap();
    let stack = Stack::start_with(
        Options::default()
            .with_workers(&[SMS])
            .with_env(
                "NOTIFY_SMS_PROVIDERS",
                json!([twilio_entry("twilio", &installation)]).to_string(),
            )
            .with_env(
                "NOTIFY_CREDENTIALS_KEY",
                "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=",
            ),
    )
    .await;
    let url = format!("{}/v1/providers/sms", stack.http);
    let list = json!({"providers": [{
        "name": "acme-twilio",
        "settings": {"base_url": own.url(), "account_sid": own.account_sid, "from": "+15005550001"},
        "credentials": {"auth_token": own.auth_token},
    }]});

    // Configured through the API; the answer, a read and the stored row never hold the token.
    let response = stack
        .client
        .put(&url)
        .bearer_auth(&stack.tenant.key)
        .json(&list)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let text = response.text().await.unwrap();
    assert!(
        text.contains("acme-twilio") && !text.contains("acme-secret-token"),
        "{text}"
    );
    let (status, shown) = stack.get("/v1/providers/sms", &stack.tenant.key).await;
    assert_eq!(status, 200);
    assert_eq!(shown["providers"][0]["name"], "acme-twilio");
    assert!(!shown.to_string().contains("acme-secret-token"));
    let stored: Vec<u8> = sqlx::query_scalar("SELECT credentials FROM tenant_providers")
        .fetch_one(&stack.db)
        .await
        .unwrap();
    assert!(
        !stored.windows(17).any(|w| w == b"acme-secret-token"),
        "sealed at rest"
    );
    let listed = stack.notifyctl(&["provider", "list", "sms", "--tenant", &stack.tenant.id]);
    assert!(
        listed.contains("acme-twilio") && !listed.contains("acme-secret-token"),
        "{listed}"
    );

    // The tenant's SMS goes through its own account; another tenant's through the house one.
    let id = send(&stack, &sms_to("+49176123456789", "Hi", json!({}))).await;
    let delivery = only_delivery(&stack, &id).await;
    assert_eq!(
        (delivery["status"].as_str(), delivery["provider"].as_str()),
        (Some("delivered"), Some("acme-twilio"))
    );
    assert_eq!(own.messages()[0].from, "+15005550001");
    assert!(installation.requests().is_empty());
    let other = stack.create_tenant("globex");
    let (status, accepted) = stack
        .post(
            "/v1/notifications",
            &other.key,
            &sms_to("+49176123456780", "Hi", json!({})),
        )
        .await;
    assert_eq!(status, 202, "{accepted}");
    installation.wait_for_accepted(1, DEADLINE).await.unwrap();
    assert_eq!(own.requests().len(), 1);

    // Channels without credentials take no tenant providers.
    let response = stack
        .client
        .put(format!("{}/v1/providers/teams", stack.http))
        .bearer_auth(&stack.tenant.key)
        .json(&list)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 422);
}
