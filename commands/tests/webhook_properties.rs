//! Property test (a bounded fuzz run) of webhook ingestion: any notification, however malformed or
//! hostile (NULs, oversized ids, timestamps from any era, wrong types where objects belong), is taken
//! part by part without a panic and without failing the whole notification; whatever becomes an
//! exception can be stored once scrubbed. The in-memory store never fails, so every error here would
//! be a part's failure escaping. `PROPTEST_CASES` sets how many notifications are tried (default 256).

use blazz_commands::codec::Codec;
use blazz_commands::handlers::channel::ConnectChannel;
use blazz_commands::handlers::webhook::WebhookTarget;
use blazz_commands::provider::meta::webhook::Notification;
use blazz_commands::store::memory::MemoryEventStore;
use blazz_commands::{CommandContext, Commands};
use blazz_domain::channel::ProviderKind;
use blazz_domain::values::{first_unstorable, scrub_json, PhoneNumber};
use proptest::prelude::*;
use serde_json::{json, Value};
use std::sync::Arc;
use uuid::Uuid;

fn hostile_text() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-zA-Z0-9 ._-]{0,12}",
        Just("\u{0}".to_owned()),
        "[a-z]{0,3}\u{0}[a-z]{0,3}",
        Just("w".repeat(300)),
        Just("STOP".to_owned()),
        any::<String>(),
    ]
}

fn timestamp() -> impl Strategy<Value = Value> {
    let now = chrono::Utc::now().timestamp();
    prop_oneof![
        (-3_000i64..600).prop_map(move |d| json!((now + d).to_string())),
        any::<i64>().prop_map(|t| json!(t.to_string())),
        any::<i64>().prop_map(|t| json!(t)),
        Just(json!("8210266873199")),
        Just(json!("soon")),
        Just(Value::Null),
        any::<f64>().prop_map(|f| json!(f)),
    ]
}

fn message() -> impl Strategy<Value = Value> {
    (
        prop_oneof![Just("6281234567890".to_owned()), hostile_text()],
        hostile_text(),
        timestamp(),
        prop_oneof![Just("text"), Just("image"), Just("interactive"), Just("hologram")],
        hostile_text(),
    )
        .prop_map(|(from, id, ts, kind, body)| {
            json!({"from": from, "id": id, "timestamp": ts, "type": kind, "text": {"body": body},
                   "image": {"caption": body}, "context": {"id": id}})
        })
}

fn status(known: Vec<String>) -> impl Strategy<Value = Value> {
    (
        hostile_text(),
        prop_oneof![Just("sent"), Just("delivered"), Just("read"), Just("failed"), Just("warped")],
        timestamp(),
        prop_oneof![proptest::sample::select(known), hostile_text()],
        any::<i64>(),
        hostile_text(),
    )
        .prop_map(|(id, st, ts, callback, code, text)| {
            json!({"id": id, "status": st, "timestamp": ts, "biz_opaque_callback_data": callback,
                   "errors": [{"code": code, "title": text, "error_data": {"details": text}}],
                   "pricing": {"billable": true, "category": text}})
        })
}

/// A notification with some structure broken on purpose (a wrong type where an array or object is).
fn notification(known: Vec<String>) -> impl Strategy<Value = Value> {
    let broken = prop_oneof![Just(json!(5)), Just(json!("x")), Just(json!([1, 2])), Just(Value::Null)];
    (
        prop::collection::vec(message(), 0..4),
        prop::collection::vec(status(known), 0..4),
        prop_oneof![4 => Just("106".to_owned()), 1 => hostile_text()],
        hostile_text(),
        prop::option::of(broken),
        prop_oneof![Just("messages"), Just("message_template_status_update"), Just("other")],
    )
        .prop_map(|(messages, statuses, pnid, name, broken, field)| {
            let mut value = json!({"metadata": {"phone_number_id": pnid}, "messages": messages, "statuses": statuses,
                                   "contacts": [{"wa_id": "6281234567890", "profile": {"name": name}}],
                                   "event": "APPROVED", "message_template_name": name, "message_template_language": "id"});
            if let Some(b) = broken {
                value["statuses"] = b.clone();
                value["metadata"] = b;
            }
            json!({"object": "whatsapp_business_account",
                   "entry": [{"id": "WABA", "changes": [{"field": field, "value": value}, {"field": 7}]}, "not an entry"]})
        })
}

#[test]
fn any_notification_is_taken_part_by_part_without_panicking() {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let commands = Commands::new(Arc::new(MemoryEventStore::new()), Codec::new());
    let workspace = Uuid::now_v7();
    let ctx = CommandContext::system(workspace, "test");
    let channel = runtime.block_on(async {
        let connect = ConnectChannel {
            provider: ProviderKind::Meta,
            phone_number_id: "106".into(),
            display_phone_number: PhoneNumber::parse("+15550783881").expect("phone"),
            rate_limit_per_second: None,
        };
        let r = commands.connect_channel(&ctx, connect).await.expect("channel");
        r.outcome.channel_id
    });
    let known: Vec<String> = (0..3).map(|_| Uuid::now_v7().to_string()).collect();
    let target = WebhookTarget { workspace_id: workspace, channel_id: channel };
    proptest!(|(raw in notification(known))| {
        let notification: Notification = serde_json::from_value(raw).expect("the envelope is always readable");
        let report = runtime.block_on(commands.ingest_meta_webhook(target, notification, None));
        let report = report.map_err(|e| TestCaseError::fail(format!("a part's failure escaped: {e}")))?;
        for e in &report.exceptions {
            prop_assert_eq!(first_unstorable("", &scrub_json(&e.payload)), None);
        }
    });
}
