//! Erasure by crypto-shredding: personal fields are sealed in the log with a per-contact key, and
//! `POST /v1/contacts/{id}/erase` destroys it, so history, read models, rebuilds, exports and
//! as-of states show them erased, the phone is free again, and the audit chain still verifies.

use blazz_api::cli::audit::{Format, Selection};
use blazz_commands::audit::{checkpoint::Signer, seal, verify};
use blazz_commands::codec::Codec;
use blazz_commands::credentials::Keyring;
use blazz_commands::handlers::contact::NewContact;
use blazz_commands::personal::{PersonalStore, Vault};
use blazz_commands::store::postgres::{BatchConfig, PgEventStore};
use blazz_commands::store::{AppendRequest, EventMetadata, EventStore, ExpectedVersion, StoreError};
use blazz_commands::{CommandContext, Commands};
use blazz_domain::contact::ContactEvent;
use blazz_domain::ids::ContactId;
use blazz_domain::values::PhoneNumber;
use blazz_domain::DomainEvent;
use blazz_projections::{read_models, rebuild};
use blazz_tests::{export_of, notification, TestApp, Ws};
use serde_json::{json, Value};
use sqlx::PgPool;
use std::sync::Arc;
use uuid::Uuid;

const PHONE: &str = "+6281234567890";

/// Rows of the workspace's events whose stored payload holds any of `words` in clear.
async fn clear_in_log(pool: &PgPool, ws: &Ws, words: &[&str]) -> Vec<String> {
    let mut found = vec![];
    for w in words {
        let types: Vec<String> = sqlx::query_scalar(
            "SELECT event_type FROM events WHERE workspace_id = $1 AND strpos(payload::text, $2) > 0",
        )
        .bind(Uuid::parse_str(&ws.id).expect("uuid"))
        .bind(*w)
        .fetch_all(pool)
        .await
        .expect("scan");
        found.extend(types.into_iter().map(|t| format!("{w} in {t}")));
    }
    found
}

/// Waits (bounded: the outbox projection may trail the others) until `contact` has `n` messages in
/// the dispatch queue.
async fn queue_holds(pool: &PgPool, contact: &str, n: i64) {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let queued: i64 = sqlx::query_scalar("SELECT count(*) FROM dispatch_queue WHERE contact_id = $1")
            .bind(Uuid::parse_str(contact).expect("uuid"))
            .fetch_one(pool)
            .await
            .expect("queue");
        if queued == n {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "{queued} queued for {contact}, not {n}");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

async fn stream(app: &TestApp, ws: &Ws, stream: &str) -> Vec<Value> {
    let a = app.get(&format!("/v1/history/streams/{stream}"), &ws.key).await.expect(200);
    a.body["events"].as_array().cloned().unwrap_or_default()
}

#[sqlx::test(migrator = "blazz_tests::MIGRATOR")]
async fn an_erased_contact_reads_as_erased_everywhere_and_its_phone_is_free_again(pool: PgPool) {
    let app = TestApp::spawn(pool.clone()).await;
    let ws = app.workspace().await;
    let (channel, number) = app.channel_of(&ws, "meta").await;
    app.credentials(&ws, &channel).await;
    let body = json!({"phone": PHONE, "name": "Wulan Sari", "attributes": {"city": "Bandung", "tier": 3}});
    let contact = app.post("/v1/contacts", &ws.key, body).await.expect(201).id("contact_id");
    let inbound = json!({"from": "6281234567890", "id": "wamid.IN1", "timestamp": chrono::Utc::now().timestamp().to_string(),
                         "type": "text", "text": {"body": "Pesanan saya di Cimahi"}});
    let value = json!({"contacts": [{"profile": {"name": "Wulan"}, "wa_id": "6281234567890"}], "messages": [inbound]});
    app.webhook(&channel, &notification(&number, value)).await.expect(200);
    let sent = app
        .post(
            "/v1/messages",
            &ws.key,
            json!({"channel_id": channel, "contact_id": contact, "type": "text", "text": {"body": "Paket ke Cimahi dikirim"}}),
        )
        .await
        .expect(202);
    let message = sent.id("message_id");
    let shown = app
        .eventually(&ws, &format!("/v1/messages/{message}?min_position={}", sent.body["position"]), |m| {
            m["preview"].is_string()
        })
        .await;
    assert_eq!(shown["preview"], "Paket ke Cimahi dikirim");

    // The log holds none of it in clear, yet every reader sees it.
    assert_eq!(clear_in_log(&pool, &ws, &["Wulan", "6281234567890", "Bandung", "Cimahi"]).await, Vec::<String>::new());
    let events = stream(&app, &ws, &format!("contact-{contact}")).await;
    assert_eq!(events[0]["payload"]["name"], "Wulan Sari");
    assert_eq!(events[0]["payload"]["attributes"]["city"], "Bandung");
    assert_eq!(events[0]["erased"], json!([]));

    queue_holds(&pool, &contact, 1).await;

    // Only owners and admins erase.
    let agent = app.post("/v1/api-keys", &ws.key, json!({"name": "inbox", "role": "agent"})).await.expect(201);
    let agent_key = agent.body["key"].as_str().expect("key").to_owned();
    app.post(&format!("/v1/contacts/{contact}/erase"), &agent_key, json!({})).await.expect(403);
    app.post(&format!("/v1/contacts/{}/erase", Uuid::now_v7()), &ws.key, json!({})).await.expect(404);
    let other = app.workspace().await;
    app.post(&format!("/v1/contacts/{contact}/erase"), &other.key, json!({})).await.expect(404);

    let erased = app.post(&format!("/v1/contacts/{contact}/erase"), &ws.key, json!({})).await.expect(200);
    assert_eq!(erased.body["erased"], true);
    let position = erased.body["position"].as_i64().expect("position");
    // Again: the same answer, nothing more in the log.
    let again = app.post(&format!("/v1/contacts/{contact}/erase"), &ws.key, json!({})).await.expect(200);
    assert_eq!(again.body["erased"], true);

    // History: every personal field erased, every event still there.
    let events = stream(&app, &ws, &format!("contact-{contact}")).await;
    let types: Vec<&str> = events.iter().filter_map(|e| e["event_type"].as_str()).collect();
    assert_eq!(types.last(), Some(&"contact.erased"), "{types:?}");
    assert_eq!(types.iter().filter(|t| **t == "contact.erased").count(), 1);
    let created = &events[0]["payload"];
    assert_eq!((created["name"].clone(), created["phone"].clone()), (Value::Null, Value::Null));
    assert_eq!(created["attributes"], json!({}));
    assert_eq!(events[0]["erased"], json!(["/phone", "/name", "/attributes"]));
    let queued = &stream(&app, &ws, &format!("message-{message}")).await[0];
    assert_eq!(queued["payload"]["content"]["body"], "");
    assert_eq!(queued["payload"]["to"], Value::Null);
    assert_eq!(queued["erased"], json!(["/to", "/content/body"]));
    let all = app.history(&ws).await;
    let inbound = all.iter().find(|e| e["event_type"] == "conversation.inbound_received").expect("inbound");
    assert_eq!(inbound["payload"]["message"]["text"], Value::Null);
    assert_eq!(inbound["payload"]["message"]["raw"], Value::Null);
    assert!(!serde_json::to_string(&all).expect("json").contains("Cimahi"));

    // Read models: the contact is gone, its messages and conversations keep no text.
    let gone = app.get(&format!("/v1/contacts/{contact}?min_position={position}"), &ws.key).await;
    assert_eq!(gone.status, 404, "{}", gone.body);
    let m = app.get(&format!("/v1/messages/{message}?min_position={position}"), &ws.key).await.expect(200);
    assert_eq!(m.body["preview"], Value::Null);
    let convs = app.get(&format!("/v1/conversations?contact_id={contact}"), &ws.key).await.expect(200);
    for c in convs.body["items"].as_array().expect("items") {
        assert_eq!(c["last_message_preview"], Value::Null, "{c}");
    }
    // Its queued message (no dispatcher runs here) leaves the dispatch queue: it has no recipient.
    queue_holds(&pool, &contact, 0).await;
    // As of before the erasure: erased too.
    let first = events[0]["position"].as_i64().expect("position");
    let state =
        app.get(&format!("/v1/history/streams/contact-{contact}/state?at_position={first}"), &ws.key).await.expect(200);
    assert_eq!(state.body["state"]["name"], Value::Null);
    assert_eq!(state.body["state"]["phone"], Value::Null);

    // Rebuilt from the log: still erased.
    let store = app.commands().store().clone();
    for name in ["contacts", "messages", "conversations"] {
        let projector = read_models::by_name(name).expect("projector");
        rebuild::rebuild(&pool, store.clone(), &Codec::new(), projector, |_| {}).await.expect("rebuild");
    }
    let previews: Vec<Option<String>> = sqlx::query_scalar("SELECT preview FROM rm_messages WHERE contact_id = $1")
        .bind(Uuid::parse_str(&contact).expect("uuid"))
        .fetch_all(&pool)
        .await
        .expect("previews");
    assert!(!previews.is_empty() && previews.iter().all(Option::is_none), "{previews:?}");
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM rm_contacts WHERE contact_id = $1")
        .bind(Uuid::parse_str(&contact).expect("uuid"))
        .fetch_one(&pool)
        .await
        .expect("count");
    assert_eq!(rows, 0);

    // The phone is free for a new contact, whose data reads as usual.
    let new = app.contact(&ws, PHONE, json!({})).await;
    assert_ne!(new, contact);
    assert_eq!(stream(&app, &ws, &format!("contact-{new}")).await[0]["payload"]["name"], "Budi");

    // The export shows the erased fields erased, and carries the sealed payloads its hashes cover.
    let selection = Selection { workspace: Uuid::parse_str(&ws.id).expect("uuid"), from: None, to: None };
    let text = String::from_utf8(export_of(&app, selection, Format::Jsonl).await).expect("utf-8");
    assert!(!text.contains("Cimahi") && !text.contains("Bandung"));
    assert!(text.lines().any(|l| l.contains("\"sealed_payload\"")));

    // Erasure rewrote nothing: the chain verifies.
    let signer = Signer::from_base64(&Signer::generate_base64()).expect("signer");
    seal::round(&pool, &signer).await.expect("seal");
    let v = verify::verify(&pool, None, &signer.public_key(), &mut |_| {}).await.expect("verify");
    assert!(v.broken.is_none(), "{:?}", v.broken);
}

fn meta() -> EventMetadata {
    EventMetadata {
        correlation_id: Uuid::now_v7(),
        causation_id: None,
        actor: "test".into(),
        request_id: None,
        agent_id: None,
    }
}

fn personal(pool: &PgPool, keys: &Keyring) -> (PersonalStore, Commands) {
    let inner: Arc<dyn EventStore> = Arc::new(PgEventStore::new(pool.clone(), BatchConfig::default()));
    let store = PersonalStore::new(inner, Vault::new(pool.clone(), keys.clone()));
    let commands = Commands::new(Arc::new(store.clone()), Codec::new()).with_vault(store.vault().clone());
    (store, commands)
}

/// Rotating the deployment key re-seals the data keys' tree (not the events): after it, the new key
/// alone opens everything, and the old one alone opens nothing.
#[sqlx::test(migrator = "blazz_tests::MIGRATOR")]
async fn rotating_the_deployment_key_reseals_data_keys_without_touching_events(pool: PgPool) {
    let (old, new) = (Keyring::generate_base64(), Keyring::generate_base64());
    let (_, commands) = personal(&pool, &Keyring::from_base64(&old, &[]).expect("key"));
    let ctx = CommandContext::system(Uuid::now_v7(), "test");
    let mut ids = vec![];
    for i in 0..3 {
        let c = NewContact {
            phone: PhoneNumber::parse(&format!("+62812000000{i}")).expect("phone"),
            name: Some(format!("Siti {i}")),
            attributes: Default::default(),
        };
        ids.push(commands.create_contact(&ctx, c).await.expect("contact").outcome.contact_id);
    }
    // The third is erased: the tree's root gives way to the 128 siblings of its path.
    commands.erase_contact(&ctx, ids[2]).await.expect("erase");
    let events_before: Vec<Value> =
        sqlx::query_scalar("SELECT payload FROM events ORDER BY position").fetch_all(&pool).await.expect("events");

    let rotated = Vault::new(pool.clone(), Keyring::from_base64(&new, &[old.clone()]).expect("keys"));
    assert_eq!(rotated.reseal_all().await.expect("reseal"), 128, "every node of the tree");
    assert_eq!(rotated.reseal_all().await.expect("again"), 0, "nothing left on the old key");
    let events_after: Vec<Value> =
        sqlx::query_scalar("SELECT payload FROM events ORDER BY position").fetch_all(&pool).await.expect("events");
    assert_eq!(events_before, events_after);

    let (only_new, _) = personal(&pool, &Keyring::from_base64(&new, &[]).expect("key"));
    for (i, id) in ids.iter().enumerate() {
        let e = only_new.read_stream(&format!("contact-{id}"), 1, None).await.expect("read");
        let name = if i < 2 { json!(format!("Siti {i}")) } else { Value::Null };
        assert_eq!(e[0].payload["name"], name);
    }
    let (only_old, _) = personal(&pool, &Keyring::from_base64(&old, &[]).expect("key"));
    let refused = only_old.read_stream(&format!("contact-{}", ids[0]), 1, None).await;
    assert!(matches!(refused, Err(StoreError::Corrupt(_))), "{refused:?}");
}

/// An event written before sealing existed (clear personal fields) reads as it is, and as erased
/// once its contact is erased: the log is not rewritten.
#[sqlx::test(migrator = "blazz_tests::MIGRATOR")]
async fn clear_events_from_before_sealing_read_as_erased_after_erasure(pool: PgPool) {
    let keys = Keyring::from_base64(&Keyring::generate_base64(), &[]).expect("key");
    let (store, commands) = personal(&pool, &keys);
    let ws = Uuid::now_v7();
    let id = Uuid::now_v7();
    let created = DomainEvent::Contact(ContactEvent::Created {
        phone: Some(PhoneNumber::parse(PHONE).expect("phone")),
        user_id: None,
        name: Some("Legacy Budi".into()),
        attributes: Default::default(),
    });
    // Straight to the store underneath, as a version before sealing wrote it.
    let request = AppendRequest::new(
        format!("contact-{id}"),
        ws,
        ExpectedVersion::NoStream,
        vec![Codec::new().encode(&created)],
        meta(),
    );
    store.sealed().append(request).await.expect("append");
    assert_eq!(
        store.read_stream(&format!("contact-{id}"), 1, None).await.expect("read")[0].payload["name"],
        "Legacy Budi"
    );

    // A later change of the same contact is sealed (it gets its key then).
    let ctx = CommandContext::system(ws, "test");
    let rename =
        blazz_commands::handlers::contact::ContactChange { name: Some(Some("Budi L.".into())), ..Default::default() };
    commands.update_contact(&ctx, ContactId::from_uuid(id), rename).await.expect("rename");
    let stored: Vec<Value> =
        sqlx::query_scalar("SELECT payload FROM events WHERE stream_id = $1 ORDER BY stream_version")
            .bind(format!("contact-{id}"))
            .fetch_all(&pool)
            .await
            .expect("stored");
    assert_eq!(stored[0]["name"], "Legacy Budi", "the old event stays as it was written");
    assert_eq!(stored[1]["name"], Value::Null, "stored blank: {}", stored[1]);
    assert_eq!(stored[1]["$pii"]["fields"], json!(["/name"]), "{}", stored[1]);

    commands.erase_contact(&ctx, ContactId::from_uuid(id)).await.expect("erase");
    let read = store.read_stream(&format!("contact-{id}"), 1, None).await.expect("read");
    assert_eq!(read[0].payload["name"], Value::Null);
    assert_eq!(read[0].payload["phone"], Value::Null);
    assert_eq!(read[0].erased, vec!["/phone", "/name", "/attributes"]);
    assert_eq!(read[1].payload["name"], Value::Null);
    assert_eq!(read.last().map(|e| e.event_type.as_str()), Some("contact.erased"));
}
