//! Tamper evidence: every event is chained to its stream predecessor, the sealer signs checkpoints
//! of each workspace's and the whole log's head, and `audit verify` finds a modified, deleted or
//! reordered event (or a forged checkpoint) at the first broken link. An auditor's script checks an
//! export offline.

use blazz_api::cli::audit::{Format, Selection};
use blazz_commands::audit::chain::{self, Content, Place};
use blazz_commands::audit::checkpoint::{self, Signer};
use blazz_commands::audit::seal;
use blazz_commands::audit::verify::{verify, Verification};
use blazz_tests::{TestApp, Ws};
use serde_json::{json, Value};
use sqlx::PgPool;
use uuid::Uuid;

struct Fixture {
    app: TestApp,
    ws: Ws,
    other: Ws,
    signer: Signer,
    /// A contact of `ws` with three events (created, renamed twice).
    contact: String,
}

impl Fixture {
    async fn new(pool: PgPool) -> Self {
        let app = TestApp::spawn(pool).await;
        let (ws, other) = (app.workspace().await, app.workspace().await);
        let contact = app.contact(&ws, "+6281200000001", json!({"city": "Bandung"})).await;
        for name in ["Budi S", "Budi Santoso"] {
            app.patch(&format!("/v1/contacts/{contact}"), &ws.key, json!({"name": name})).await.expect(200);
        }
        // Numbers and text as jsonb stores and prints them differently: digests made before storing
        // must hold after reading back, in Rust and in the auditor's script.
        let odd = json!({"score": 1.5, "vip": true, "big": 1e300, "tiny": 1e-7, "zero": -0.0, "whole": 1000.0,
                         "huge": 18446744073709551615u64, "text": "ü\u{1}\"/\\ \u{1F600}"});
        app.contact(&ws, "+6281200000002", odd).await;
        app.contact(&other, "+6281200000001", json!({})).await;
        let signer = Signer::from_base64(&Signer::generate_base64()).expect("key");
        let f = Self { app, ws, other, signer, contact };
        f.seal().await;
        f
    }

    fn workspace(&self) -> Uuid {
        self.ws.id.parse().expect("uuid")
    }

    /// Waits until every committed event is below the read horizon (a transaction of another test
    /// may hold it back), so the sealer and the verifier see them all.
    async fn settle(&self) {
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM events").fetch_one(&self.app.pool).await.expect("count");
        blazz_commands::store::conformance::read_whole_log(&**self.app.commands().store(), None, n as usize).await;
    }

    /// Settles, then runs a sealer round.
    async fn seal(&self) -> seal::Sealed {
        self.settle().await;
        seal::round(&self.app.pool, &self.signer).await.expect("sealer round")
    }

    async fn verify(&self, workspace: Option<Uuid>) -> Verification {
        verify(&self.app.pool, workspace, &self.signer.public_key(), &mut |_| {}).await.expect("verify")
    }

    async fn sql(&self, statement: &str) {
        sqlx::raw_sql(statement).execute(&self.app.pool).await.expect(statement);
    }

    fn stream(&self) -> String {
        format!("contact-{}", self.contact)
    }

    async fn position(&self, version: i64) -> i64 {
        sqlx::query_scalar("SELECT position FROM events WHERE stream_id = $1 AND stream_version = $2")
            .bind(self.stream())
            .bind(version)
            .fetch_one(&self.app.pool)
            .await
            .expect("position")
    }

    #[track_caller]
    fn assert_broken_at(v: &Verification, position: i64, reason: &str) {
        let b = v.broken.as_ref().unwrap_or_else(|| panic!("verified intact: {v:?}"));
        assert_eq!(b.position, position, "{b}");
        assert!(b.reason.contains(reason), "{b}");
    }
}

#[sqlx::test(migrator = "blazz_tests::MIGRATOR")]
async fn an_untouched_log_verifies_with_signed_checkpoints_of_each_workspace_and_the_whole_log(pool: PgPool) {
    let f = Fixture::new(pool).await;
    let total: i64 = sqlx::query_scalar("SELECT count(*) FROM events").fetch_one(&f.app.pool).await.expect("count");
    let mine: i64 = sqlx::query_scalar("SELECT count(*) FROM events WHERE workspace_id = $1")
        .bind(f.workspace())
        .fetch_one(&f.app.pool)
        .await
        .expect("count");
    // Every event went in with its digest and link; none needed the sealer of older events.
    let unsealed: i64 = sqlx::query_scalar("SELECT count(*) FROM events WHERE hash IS NULL OR content_digest IS NULL")
        .fetch_one(&f.app.pool)
        .await
        .expect("count");
    assert_eq!(unsealed, 0);

    let whole = f.verify(None).await;
    assert_eq!(whole.broken, None);
    assert_eq!(whole.events, total as u64);
    // The whole log's, each workspace's, and the operator's (workspace creation) heads.
    let scopes: i64 = sqlx::query_scalar("SELECT count(DISTINCT scope) FROM audit_checkpoints")
        .fetch_one(&f.app.pool)
        .await
        .expect("count");
    assert_eq!(whole.checkpoints, scopes as u64);
    assert!(scopes >= 3, "{scopes}");
    assert_eq!(whole.unsigned_tail, 0);

    let one = f.verify(Some(f.workspace())).await;
    assert_eq!((one.broken, one.events, one.checkpoints), (None, mine as u64, 1));

    // New events: their links hold; the next round signs them.
    f.app.patch(&format!("/v1/contacts/{}", f.contact), &f.ws.key, json!({"name": "Pak Budi"})).await.expect(200);
    f.settle().await;
    let v = f.verify(Some(f.workspace())).await;
    assert_eq!((v.broken, v.unsigned_tail), (None, 1));
    let round = f.seal().await;
    assert_eq!((round.folded, round.sealed), (1, 0));
    assert_eq!(f.verify(Some(f.workspace())).await.checkpoints, 2);

    // The history shows each event's link.
    let history = f.app.get(&format!("/v1/history/streams/{}", f.stream()), &f.ws.key).await.expect(200);
    let stored: Vec<u8> = sqlx::query_scalar("SELECT hash FROM events WHERE stream_id = $1 AND stream_version = 1")
        .bind(f.stream())
        .fetch_one(&f.app.pool)
        .await
        .expect("hash");
    assert_eq!(history.body["events"][0]["hash"], json!(hex::encode(stored)));
}

#[sqlx::test(migrator = "blazz_tests::MIGRATOR")]
async fn a_modified_event_is_found_where_it_was_changed_and_only_in_its_workspace(pool: PgPool) {
    let f = Fixture::new(pool).await;
    let at = f.position(2).await;
    let original: Value = sqlx::query_scalar("SELECT payload FROM events WHERE position = $1")
        .bind(at)
        .fetch_one(&f.app.pool)
        .await
        .expect("payload");
    f.sql(&format!(
        "UPDATE events SET payload = jsonb_set(payload, '{{name}}', '\"Someone else\"') WHERE position = {at}"
    ))
    .await;
    Fixture::assert_broken_at(&f.verify(None).await, at, "content differs");
    Fixture::assert_broken_at(&f.verify(Some(f.workspace())).await, at, "content differs");
    let other = f.verify(Some(f.other.id.parse().expect("uuid"))).await;
    assert_eq!(other.broken, None);

    // Put back, it verifies again; metadata is covered too: who did it cannot be rewritten.
    sqlx::query("UPDATE events SET payload = $2 WHERE position = $1")
        .bind(at)
        .bind(&original)
        .execute(&f.app.pool)
        .await
        .expect("restore");
    assert_eq!(f.verify(Some(f.workspace())).await.broken, None);
    let third = f.position(3).await;
    f.sql(&format!(
        "UPDATE events SET metadata = jsonb_set(metadata, '{{actor}}', '\"operator\"') WHERE position = {third}"
    ))
    .await;
    Fixture::assert_broken_at(&f.verify(Some(f.workspace())).await, third, "content differs");
}

#[sqlx::test(migrator = "blazz_tests::MIGRATOR")]
async fn a_deleted_event_is_found_at_the_next_event_of_its_stream(pool: PgPool) {
    let f = Fixture::new(pool).await;
    let (gone, next) = (f.position(2).await, f.position(3).await);
    f.sql(&format!("DELETE FROM events WHERE position = {gone}")).await;
    Fixture::assert_broken_at(&f.verify(Some(f.workspace())).await, next, "from version 1 to 3");
}

#[sqlx::test(migrator = "blazz_tests::MIGRATOR")]
async fn reordered_events_are_found(pool: PgPool) {
    let f = Fixture::new(pool).await;
    let (second, third) = (f.position(2).await, f.position(3).await);
    // Versions 2 and 3 swap places.
    f.sql(&format!(
        "UPDATE events SET stream_version = 1000 WHERE position = {second};
         UPDATE events SET stream_version = 2 WHERE position = {third};
         UPDATE events SET stream_version = 3 WHERE position = {second}"
    ))
    .await;
    Fixture::assert_broken_at(&f.verify(Some(f.workspace())).await, second, "from version 1 to 3");
    // Their recording times swapped instead: the links name the times.
    f.sql(&format!(
        "UPDATE events SET stream_version = 1000 WHERE position = {third};
         UPDATE events SET stream_version = 2 WHERE position = {second};
         UPDATE events SET stream_version = 3 WHERE position = {third}"
    ))
    .await;
    assert_eq!(f.verify(Some(f.workspace())).await.broken, None);
    f.sql(&format!("UPDATE events SET recorded_at = recorded_at - interval '1 day' WHERE position = {second}")).await;
    Fixture::assert_broken_at(&f.verify(Some(f.workspace())).await, second, "link");
}

#[sqlx::test(migrator = "blazz_tests::MIGRATOR")]
async fn a_deleted_last_event_and_a_rehashed_change_are_found_by_the_signed_checkpoint(pool: PgPool) {
    let f = Fixture::new(pool).await;
    // The last event of a stream has no successor to betray it; the checkpoint does.
    let last = f.position(3).await;
    let before: Vec<u8> = sqlx::query_scalar("SELECT hash FROM events WHERE position = $1")
        .bind(last)
        .fetch_one(&f.app.pool)
        .await
        .expect("hash");
    f.sql(&format!(
        "CREATE TABLE kept AS SELECT * FROM events WHERE position = {last}; DELETE FROM events WHERE position = {last}"
    ))
    .await;
    let v = f.verify(Some(f.workspace())).await;
    assert!(v.broken.as_ref().is_some_and(|b| b.reason.contains("checkpoint")), "{v:?}");
    f.sql("INSERT INTO events OVERRIDING SYSTEM VALUE SELECT * FROM kept").await;
    let restored: Vec<u8> = sqlx::query_scalar("SELECT hash FROM events WHERE position = $1")
        .bind(last)
        .fetch_one(&f.app.pool)
        .await
        .expect("hash");
    assert_eq!(restored, before, "the trigger recomputed the same link");
    assert_eq!(f.verify(Some(f.workspace())).await.broken, None);

    // A forger who knows the algorithm changes an event and recomputes its digest and link (and the
    // stream's later links): every link holds, the checkpoint does not.
    type Row = (i64, Uuid, String, i32, Value, Value, chrono::DateTime<chrono::Utc>);
    let (position, event_id, event_type, schema_version, _, metadata, at): Row = sqlx::query_as(
        "SELECT position, event_id, event_type, schema_version, payload, metadata, recorded_at FROM events WHERE position = $1",
    )
    .bind(last)
    .fetch_one(&f.app.pool)
    .await
    .expect("row");
    let forged = json!({"name": "Forged"});
    let stream = f.stream();
    let previous: Vec<u8> = sqlx::query_scalar("SELECT hash FROM events WHERE stream_id = $1 AND stream_version = 2")
        .bind(&stream)
        .fetch_one(&f.app.pool)
        .await
        .expect("hash");
    let content = Content {
        event_id,
        event_type: &event_type,
        metadata: &metadata,
        payload: &forged,
        schema_version,
        stream_id: &stream,
        workspace_id: f.workspace(),
    };
    let digest = chain::content_digest(&content);
    let previous = chain::hash_of(Some(&previous)).expect("32 bytes");
    let hash = chain::link(
        &previous,
        &digest,
        Place { stream_version: 3, position, recorded_at_micros: at.timestamp_micros() },
    );
    sqlx::query("UPDATE events SET payload = $2, content_digest = $3, hash = $4 WHERE position = $1")
        .bind(position)
        .bind(&forged)
        .bind(&digest[..])
        .bind(&hash[..])
        .execute(&f.app.pool)
        .await
        .expect("forge");
    let v = f.verify(Some(f.workspace())).await;
    assert!(v.broken.as_ref().is_some_and(|b| b.reason.contains("checkpoint")), "{v:?}");
}

#[sqlx::test(migrator = "blazz_tests::MIGRATOR")]
async fn a_checkpoint_not_signed_by_the_trusted_key_is_refused(pool: PgPool) {
    let f = Fixture::new(pool).await;
    let stranger = Signer::from_base64(&Signer::generate_base64()).expect("key");
    let v = verify(&f.app.pool, Some(f.workspace()), &stranger.public_key(), &mut |_| {}).await.expect("verify");
    assert!(v.broken.as_ref().is_some_and(|b| b.reason.contains("not signed by the trusted key")), "{v:?}");
    // A checkpoint whose head was changed no longer carries a valid signature.
    f.sql("UPDATE audit_checkpoints SET head = sha256(head)").await;
    let v = f.verify(Some(f.workspace())).await;
    assert!(v.broken.as_ref().is_some_and(|b| b.reason.contains("checkpoint")), "{v:?}");
}

#[sqlx::test(migrator = "blazz_tests::MIGRATOR")]
async fn events_appended_before_the_chain_existed_are_sealed_once_then_verify(pool: PgPool) {
    let f = Fixture::new(pool).await;
    // As an event from before migration 0025: no digest, so the trigger leaves it unlinked, and an
    // event appended onto it stays unlinked until the sealer reaches it.
    let stream = format!("contact-{}", Uuid::new_v4());
    for version in 1..=2 {
        sqlx::query(
            "INSERT INTO events (stream_id, stream_version, event_id, event_type, schema_version, workspace_id, payload, metadata)
             VALUES ($1, $2, $3, 'contact.renamed', 1, $4, '{\"name\": \"Old\"}', $5)",
        )
        .bind(&stream)
        .bind(version)
        .bind(Uuid::new_v4())
        .bind(f.workspace())
        .bind(json!({"actor": "operator", "correlation_id": Uuid::new_v4()}))
        .execute(&f.app.pool)
        .await
        .expect("insert");
    }
    f.settle().await;
    let v = f.verify(Some(f.workspace())).await;
    assert!(v.broken.as_ref().is_some_and(|b| b.reason.contains("not sealed")), "{v:?}");
    let round = f.seal().await;
    assert_eq!((round.sealed, round.folded), (2, 2));
    assert_eq!(f.verify(None).await.broken, None);
    let v = f.verify(Some(f.workspace())).await;
    assert_eq!((v.broken, v.unsigned_tail), (None, 0));
}

async fn exported(f: &Fixture) -> Vec<u8> {
    blazz_tests::export_of(&f.app, Selection { workspace: f.workspace(), from: None, to: None }, Format::Jsonl).await
}

fn offline(events: &[u8], checkpoints: &str, public_key: &[u8; 32]) -> (bool, String) {
    let dir = std::env::temp_dir().join(format!("blazz-audit-{}", Uuid::new_v4()));
    std::fs::create_dir_all(&dir).expect("dir");
    std::fs::write(dir.join("events.jsonl"), events).expect("write");
    std::fs::write(dir.join("checkpoints.jsonl"), checkpoints).expect("write");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/verify-audit-export.py");
    let run = std::process::Command::new("python3")
        .arg(script)
        .arg(dir.join("events.jsonl"))
        .arg(dir.join("checkpoints.jsonl"))
        .arg("--public-key")
        .arg(hex::encode(public_key))
        .output()
        .expect("python3 runs");
    let _ = std::fs::remove_dir_all(&dir);
    (run.status.success(), String::from_utf8_lossy(&run.stdout).into_owned())
}

#[sqlx::test(migrator = "blazz_tests::MIGRATOR")]
async fn an_auditors_script_verifies_an_export_offline_and_finds_a_changed_line(pool: PgPool) {
    let f = Fixture::new(pool).await;
    let events = exported(&f).await;
    let checkpoints: String = checkpoint::list(&f.app.pool, f.workspace())
        .await
        .expect("checkpoints")
        .iter()
        .map(|c| serde_json::to_string(c).expect("json") + "\n")
        .collect();
    let lines = String::from_utf8(events.clone()).expect("utf-8").lines().count();
    let (ok, said) = offline(&events, &checkpoints, &f.signer.public_key());
    assert!(ok, "{said}");
    assert_eq!(said.trim(), format!("intact: {lines} events, 1 signed checkpoints"));

    // One altered sealed field (the form the hashes cover; personal fields are sealed), or one line
    // left out, or another key: each is found.
    let text = String::from_utf8(events).expect("utf-8");
    let at = text.find("\"sealed\":\"").expect("sealed fields") + "\"sealed\":\"".len();
    let flipped = if text.as_bytes()[at] == b'A' { "B" } else { "A" };
    let changed = format!("{}{flipped}{}", &text[..at], &text[at + 1..]);
    assert_ne!(changed, text);
    let (ok, said) = offline(changed.as_bytes(), &checkpoints, &f.signer.public_key());
    assert!(!ok && said.contains("differs"), "{said}");
    let dropped: String = text.lines().take(lines - 1).map(|l| format!("{l}\n")).collect();
    let (ok, said) = offline(dropped.as_bytes(), &checkpoints, &f.signer.public_key());
    assert!(!ok && said.contains("does not hold"), "{said}");
    let stranger = Signer::from_base64(&Signer::generate_base64()).expect("key");
    let (ok, said) = offline(text.as_bytes(), &checkpoints, &stranger.public_key());
    assert!(!ok && said.contains("not signed"), "{said}");
}
