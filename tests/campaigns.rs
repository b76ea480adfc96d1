//! Campaigns over HTTP: validation up front, the audience frozen and fanned out with exclusions,
//! pause / resume / cancel holding dispatch, and scheduling in the workspace's time zone.

use blazz_api::server::{dispatcher, EdgeSettings};
use blazz_commands::dispatch::{Dispatched, Dispatcher};
use blazz_commands::provider::sandbox::SandboxScript;
use blazz_domain::campaign::{CampaignCommand, CampaignStatus};
use blazz_domain::ids::{CampaignId, MessageId};
use blazz_domain::message::MessageEvent;
use blazz_domain::DomainEvent;
use blazz_tests::{Live, Settings, TestApp, Ws, OPERATOR_TOKEN};
use serde_json::{json, Value};
use sqlx::PgPool;
use std::time::Duration;
use uuid::Uuid;

struct Setup {
    app: TestApp,
    ws: Ws,
    channel: String,
    template: String,
}

async fn setup(pool: PgPool, settings: Settings) -> Setup {
    let app = TestApp::spawn_with(pool, settings).await;
    let ws = app.workspace().await;
    let (channel, _) = app.channel_of(&ws, "sandbox").await;
    app.credentials(&ws, &channel).await;
    let template = app.template(&ws, "promo", "MARKETING", "APPROVED").await;
    Setup { app, ws, channel, template }
}

fn plain() -> Settings {
    Settings::new(4, Some(OPERATOR_TOKEN.into()))
}

impl Setup {
    async fn create(&self, audience: Value) -> blazz_tests::Answer {
        self.app
            .post(
                "/v1/campaigns",
                &self.ws.key,
                json!({"name": "Promo", "channel_id": self.channel, "template_id": self.template, "audience": audience,
                       "variables": {"first_name": {"attribute": "first_name", "default": "Kak"}}}),
            )
            .await
    }

    async fn group(&self, members: &[&str]) -> String {
        let g = self
            .app
            .post("/v1/groups", &self.ws.key, json!({"name": format!("g{}", Uuid::now_v7())}))
            .await
            .expect(201)
            .id("group_id");
        self.app
            .post(&format!("/v1/groups/{g}/members"), &self.ws.key, json!({"contact_ids": members}))
            .await
            .expect(200);
        g
    }

    /// A dispatcher of this app (same credentials), driven by the test.
    fn dispatcher(&self) -> Dispatcher {
        let state = &self.app.server.state;
        dispatcher(
            &self.app.pool,
            state.commands.clone(),
            state.credentials.clone(),
            &EdgeSettings::default(),
            &self.app.server.url(""),
        )
    }

    async fn messages_of(&self, campaign: &str) -> Vec<(Uuid, Uuid)> {
        let ids: Vec<Uuid> = sqlx::query_scalar("SELECT DISTINCT substr(stream_id, 9)::uuid FROM events WHERE event_type = 'message.queued' AND payload->>'campaign_id' = $1")
            .bind(campaign)
            .fetch_all(&self.app.pool)
            .await
            .unwrap();
        ids.into_iter().map(|m| (Uuid::parse_str(&self.ws.id).unwrap(), m)).collect()
    }
}

#[sqlx::test(migrator = "blazz_tests::MIGRATOR")]
async fn invalid_campaigns_are_refused_up_front_with_clear_codes(pool: PgPool) {
    let s = setup(pool, plain()).await;
    let pending = s.app.template(&s.ws, "draft_promo", "MARKETING", "PENDING").await;
    let body = |template: &str, audience: Value, variables: Value| json!({"name": "x", "channel_id": s.channel, "template_id": template, "audience": audience, "variables": variables});
    let all = json!({"kind": "all"});
    let a = s.app.post("/v1/campaigns", &s.ws.key, body(&pending, all.clone(), json!({}))).await;
    assert_eq!((a.status.as_u16(), a.code()), (422, "template_not_approved"));
    let positional = s
        .app
        .post(
            "/v1/templates",
            &s.ws.key,
            json!({"name": "order", "language": "id", "category": "UTILITY", "components": [{"type": "BODY", "text": "Pesanan {{1}}"}]}),
        )
        .await
        .expect(201)
        .id("template_id");
    s.app
        .post(
            &format!("/v1/templates/{positional}/review"),
            OPERATOR_TOKEN,
            json!({"workspace_id": s.ws.id, "status": "APPROVED"}),
        )
        .await
        .expect(200);
    let a = s.app.post("/v1/campaigns", &s.ws.key, body(&positional, all.clone(), json!({}))).await;
    assert_eq!((a.status.as_u16(), a.code()), (422, "missing_template_variable"));
    s.app
        .post("/v1/campaigns", &s.ws.key, body(&positional, all.clone(), json!({"body.1": {"value": "A-1"}})))
        .await
        .expect(201);
    let a = s.create(json!({"kind": "contacts", "contact_ids": []})).await;
    assert_eq!((a.status.as_u16(), a.code()), (422, "empty_audience"));
    let a = s.create(json!({"kind": "groups", "group_ids": [Uuid::now_v7()]})).await;
    assert_eq!(a.status.as_u16(), 422, "{}", a.body);
    // No contacts at all: the launch finds an empty audience.
    let c = s.create(all).await.expect(201).id("campaign_id");
    let a = s.app.post(&format!("/v1/campaigns/{c}/launch"), &s.ws.key, json!({})).await;
    assert_eq!((a.status.as_u16(), a.code()), (422, "empty_audience"));
    let wrong = s.app.post("/v1/campaigns", &s.ws.key, json!({"name": "x"})).await;
    assert_eq!(wrong.status.as_u16(), 400, "{}", wrong.body);
}

#[sqlx::test(migrator = "blazz_tests::MIGRATOR")]
async fn launch_freezes_the_audience_and_skips_opted_out_duplicates_and_deleted(pool: PgPool) {
    let s = setup(pool, plain()).await;
    let mut ids = vec![];
    for (p, name) in
        [("+6281100000001", "Ani"), ("+6281100000002", "Budi"), ("+6281100000003", "Dewi"), ("+6281100000004", "Eko")]
    {
        ids.push(s.app.contact(&s.ws, p, json!({"first_name": name})).await);
    }
    let (a, b, d, gone) = (ids[0].clone(), ids[1].clone(), ids[2].clone(), ids[3].clone());
    s.app.post(&format!("/v1/contacts/{d}/opt-out"), &s.ws.key, json!({"reason": "asked"})).await.expect(200);
    let g1 = s.group(&[&a, &b, &gone]).await;
    let g2 = s.group(&[&b, &d]).await;
    s.app.delete(&format!("/v1/contacts/{gone}"), &s.ws.key).await.expect(200);
    let campaign = s.create(json!({"kind": "groups", "group_ids": [g1, g2]})).await.expect(201).id("campaign_id");
    let launched = s.app.launch(&s.ws, &campaign).await;
    assert_eq!(launched["queued"], 2, "{launched}");
    assert_eq!(launched["skipped"], json!({"opted_out": 1, "duplicate": 1, "unknown": 1, "missing_variable": 0}));

    // Joining a group after the launch does not add to it.
    let late = s.app.contact(&s.ws, "+6281100000005", json!({"first_name": "Fajar"})).await;
    s.app.post(&format!("/v1/groups/{g1}/members"), &s.ws.key, json!({"contact_ids": [late]})).await.expect(200);
    assert_eq!(s.messages_of(&campaign).await.len(), 2);
    let again = s.app.post(&format!("/v1/campaigns/{campaign}/launch"), &s.ws.key, json!({})).await;
    assert_eq!((again.status.as_u16(), again.code()), (409, "invalid_state"));

    let row = s
        .app
        .get(&format!("/v1/campaigns/{campaign}?min_position={}", launched["position"]), &s.ws.key)
        .await
        .expect(200)
        .body;
    assert_eq!((row["status"].as_str(), row["queued"].as_i64()), (Some("running"), Some(2)), "{row}");
    // The rendered message carries the contact's attribute through the mapping.
    let history = s.app.history(&s.ws).await;
    let previews: Vec<&str> = history
        .iter()
        .filter(|e| e["event_type"] == "message.queued")
        .map(|e| e["payload"]["content"]["rendered"]["body_preview"].as_str().unwrap())
        .collect();
    assert!(previews.contains(&"Halo Ani, diskon 10%") && previews.contains(&"Halo Budi, diskon 10%"), "{previews:?}");
}

/// A launch request answers 202 `launching` before the fan-out; a campaign cancelled before its
/// fan-out runs queues nothing, and one whose fan-out has finished is not fanned out again.
#[sqlx::test(migrator = "blazz_tests::MIGRATOR")]
async fn the_fan_out_runs_after_the_launch_answer_and_not_for_a_cancelled_campaign(pool: PgPool) {
    let s = setup(pool, plain()).await;
    for i in 0..3 {
        s.app.contact(&s.ws, &format!("+628130000000{i}"), json!({"first_name": "X"})).await;
    }
    let (ctx, commands) = (s.app.system(&s.ws), s.app.commands());
    let id = s.create(json!({"kind": "all"})).await.expect(201).id("campaign_id");
    let campaign = CampaignId::from_uuid(Uuid::parse_str(&id).unwrap());
    // The request's part alone (no launcher): the launch has started and nothing is queued yet.
    let started = commands.start_launch(&ctx, campaign).await.unwrap();
    assert_eq!(started.outcome.status, CampaignStatus::Launching, "{started:?}");
    assert!(s.messages_of(&id).await.is_empty());
    commands.change_campaign(&ctx, campaign, |at| CampaignCommand::Cancel { at }).await.unwrap();
    let outcome = commands.fan_out(&ctx, campaign).await.unwrap();
    assert_eq!(outcome.queued, 0);
    assert!(s.messages_of(&id).await.is_empty(), "a cancelled campaign queues nothing");

    // Over HTTP: 202, then the fan-out in the background; a second fan-out changes nothing.
    let other = s.create(json!({"kind": "all"})).await.expect(201).id("campaign_id");
    let launched = s.app.launch(&s.ws, &other).await;
    assert_eq!(launched["queued"], 3, "{launched}");
    let again = commands.fan_out(&ctx, CampaignId::from_uuid(Uuid::parse_str(&other).unwrap())).await.unwrap();
    assert_eq!(again.queued, 3);
    assert_eq!(
        s.app
            .stream_types(&s.ws, &format!("campaign-{other}"))
            .await
            .iter()
            .filter(|t| *t == "campaign.launched")
            .count(),
        1
    );
    assert_eq!(s.messages_of(&other).await.len(), 3);
}

#[sqlx::test(migrator = "blazz_tests::MIGRATOR")]
async fn pause_and_cancel_hold_dispatch_and_resume_releases_it(pool: PgPool) {
    let s = setup(pool, plain()).await;
    for i in 0..3 {
        s.app.contact(&s.ws, &format!("+628120000000{i}"), json!({"first_name": "X"})).await;
    }
    let campaign = s.create(json!({"kind": "all"})).await.expect(201).id("campaign_id");
    s.app.launch(&s.ws, &campaign).await;
    let paused = s
        .app
        .post(&format!("/v1/campaigns/{campaign}/pause"), &s.ws.key, json!({"reason": "check copy"}))
        .await
        .expect(200);
    assert_eq!(paused.body["status"], "paused");
    let d = s.dispatcher();
    let messages = s.messages_of(&campaign).await;
    assert_eq!(messages.len(), 3);
    for (ws, m) in &messages {
        assert_eq!(d.dispatch(*ws, MessageId::from_uuid(*m)).await.unwrap(), Dispatched::Held);
    }
    s.app.post(&format!("/v1/campaigns/{campaign}/resume"), &s.ws.key, json!({})).await.expect(200);
    let (ws, first) = messages[0];
    assert!(matches!(d.dispatch(ws, MessageId::from_uuid(first)).await.unwrap(), Dispatched::Sent { .. }));
    let cancelled = s.app.post(&format!("/v1/campaigns/{campaign}/cancel"), &s.ws.key, json!({})).await.expect(200);
    assert_eq!(cancelled.body["status"], "cancelled");
    // A dispatcher remembers a running campaign for up to a second; one that reads it after the cancel
    // holds its messages.
    let (ws, second) = messages[1];
    assert_eq!(s.dispatcher().dispatch(ws, MessageId::from_uuid(second)).await.unwrap(), Dispatched::Held);
    let resumed = s.app.post(&format!("/v1/campaigns/{campaign}/resume"), &s.ws.key, json!({})).await;
    assert_eq!((resumed.status.as_u16(), resumed.code()), (409, "invalid_state"));
}

#[sqlx::test(migrator = "blazz_tests::MIGRATOR")]
async fn a_scheduled_campaign_starts_on_time_and_its_progress_is_counted(pool: PgPool) {
    let mut settings = plain();
    settings.edge.dispatch = true;
    settings.edge.sandbox = SandboxScript {
        sent_after: Duration::from_millis(10),
        delivered_after: Duration::from_millis(20),
        read_after: Some(Duration::from_millis(30)),
        fail_with: None,
        reply: None,
    };
    let s = setup(pool, settings).await;
    for i in 0..3 {
        s.app.contact(&s.ws, &format!("+628130000000{i}"), json!({"first_name": "Y"})).await;
    }
    // The workspace is in Asia/Jakarta (UTC+7): a local time two seconds ahead.
    let local = (chrono::Utc::now() + chrono::Duration::seconds(2))
        .with_timezone(&chrono_tz_offset())
        .format("%Y-%m-%dT%H:%M:%S")
        .to_string();
    let body = json!({"name": "Later", "channel_id": s.channel, "template_id": s.template, "audience": {"kind": "all"}, "schedule_at": local});
    let campaign = s.app.post("/v1/campaigns", &s.ws.key, body).await.expect(201).id("campaign_id");
    let row = s.app.eventually(&s.ws, &format!("/v1/campaigns/{campaign}"), |c| c["status"] == "scheduled").await;
    let at = chrono::DateTime::parse_from_rfc3339(row["scheduled_at"].as_str().unwrap()).unwrap();
    let expected =
        chrono::NaiveDateTime::parse_from_str(&local, "%Y-%m-%dT%H:%M:%S").unwrap() - chrono::Duration::hours(7);
    assert_eq!(at.naive_utc(), expected, "local time of the workspace, stored as UTC");
    let done = s.app.eventually(&s.ws, &format!("/v1/campaigns/{campaign}"), |c| c["read"] == 3).await;
    assert_eq!((done["queued"].as_i64(), done["failed"].as_i64()), (Some(0), Some(0)), "{done}");
    assert!(done["rate_per_second"].as_f64().unwrap() > 0.0, "{done}");
    assert_eq!(done["eta_seconds"], 0, "{done}");
    let launched = chrono::DateTime::parse_from_rfc3339(done["launched_at"].as_str().unwrap()).unwrap();
    assert!(launched >= at, "not before its time: {launched} < {at}");
}

/// Jakarta's fixed offset (no daylight saving).
fn chrono_tz_offset() -> chrono::FixedOffset {
    chrono::FixedOffset::east_opt(7 * 3600).unwrap()
}

#[sqlx::test(migrator = "blazz_tests::MIGRATOR")]
async fn a_running_campaign_sends_its_progress_every_second_even_without_events(pool: PgPool) {
    // No dispatcher: the campaign runs, stalled, and no event changes it.
    let s = setup(pool, plain()).await;
    for i in 0..3 {
        s.app.contact(&s.ws, &format!("+628120000000{i}"), json!({})).await;
    }
    let other = s.app.workspace().await;
    let mut live = Live::connect(&s.app, &s.ws.key, None).await;
    let mut other_live = Live::connect(&s.app, &other.key, None).await;
    let id = s.create(json!({"kind": "all"})).await.expect(201).id("campaign_id");
    s.app.launch(&s.ws, &id).await;
    let p = s.app.post("/v1/contacts", &s.ws.key, json!({"phone": "+6281200000099"})).await.expect(201);
    s.app.get(&format!("/v1/contacts?min_position={}", p.body["position"]), &s.ws.key).await.expect(200);
    let events = || async {
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM events").fetch_one(&s.app.pool).await.expect("count")
    };
    let before = events().await;
    let mut ticks = 0;
    while ticks < 3 {
        let m = live.next().await;
        if m["type"] == "progress" {
            assert_eq!((m["kind"].as_str(), m["id"].as_str()), (Some("campaign"), Some(id.as_str())), "{m}");
            assert_eq!(m["changed"]["queued"], 3, "{m}");
            assert_eq!(m["changed"]["status"], "running", "{m}");
            ticks += 1;
        }
    }
    assert_eq!(events().await, before, "the ticks came without any event");
    // Another workspace's client got none of them: its first message is its own delta.
    let c = s.app.post("/v1/contacts", &other.key, json!({"phone": "+6281200000098"})).await.expect(201);
    let m = other_live.next().await;
    assert_eq!((m["type"].as_str(), &m["id"]), (Some("delta"), &c.body["contact_id"]), "{m}");
}

fn dispatching(script: SandboxScript, unknown_after: Duration) -> Settings {
    let mut settings = plain();
    settings.edge.dispatch = true;
    settings.edge.sandbox = script;
    settings.edge.retry.unknown_after = unknown_after;
    settings
}

/// The `campaign.completed` event's payload of a campaign (waits, bounded, for it).
async fn completion(app: &TestApp, ws: &Ws, campaign: &str) -> Value {
    let row = app.eventually(ws, &format!("/v1/campaigns/{campaign}"), |c| c["status"] == "completed").await;
    assert!(row["completed_at"].is_string(), "{row}");
    let history = app.get(&format!("/v1/history/streams/campaign-{campaign}"), &ws.key).await.expect(200);
    let events = history.body["events"].as_array().cloned().unwrap_or_default();
    let completed: Vec<&Value> = events.iter().filter(|e| e["event_type"] == "campaign.completed").collect();
    assert_eq!(completed.len(), 1, "completed once: {events:?}");
    completed[0]["payload"].clone()
}

/// Once every message is final the campaign completes: the event carries the final counts and what
/// the launch skipped, the read model shows `completed_at`, and its progress ticks stop.
#[sqlx::test(migrator = "blazz_tests::MIGRATOR")]
async fn a_campaign_completes_once_every_message_is_final(pool: PgPool) {
    let script = SandboxScript {
        sent_after: Duration::from_millis(10),
        delivered_after: Duration::from_millis(20),
        read_after: None,
        fail_with: None,
        reply: None,
    };
    let s = setup(pool, dispatching(script, Duration::from_secs(600))).await;
    let mut ids = vec![];
    for i in 0..3 {
        ids.push(s.app.contact(&s.ws, &format!("+628140000000{i}"), json!({"first_name": "C"})).await);
    }
    s.app.post(&format!("/v1/contacts/{}/opt-out", ids[2]), &s.ws.key, json!({"reason": "asked"})).await.expect(200);
    let id = s.create(json!({"kind": "all"})).await.expect(201).id("campaign_id");
    let launched = s.app.launch(&s.ws, &id).await;
    assert_eq!(launched["queued"], 2, "{launched}");
    let done = completion(&s.app, &s.ws, &id).await;
    let counts = &done["counts"];
    let total: u64 =
        ["sent", "delivered", "read", "failed", "unknown"].iter().map(|k| counts[k].as_u64().unwrap()).sum();
    assert_eq!(total, 2, "{done}");
    assert_eq!((counts["failed"].as_u64(), counts["unknown"].as_u64()), (Some(0), Some(0)), "{done}");
    assert_eq!(done["skipped"]["opted_out"], 1, "{done}");
    // No more progress ticks: the ticker sends running campaigns only.
    let running = blazz_projections::read_models::campaigns::running(&s.app.pool).await.unwrap();
    assert!(running.iter().all(|(_, c, _)| c.to_string() != id), "{running:?}");
}

/// Messages whose outcome never came are marked unknown by the crash policy, and the campaign then
/// completes, also when the process that dispatched them is gone (a restarted one finishes it).
#[sqlx::test(migrator = "blazz_tests::MIGRATOR")]
async fn a_campaign_whose_last_messages_end_unknown_completes_after_a_restart(pool: PgPool) {
    // The first process has no dispatcher of its own; the test plays one that recorded its attempts
    // and crashed before any provider answer.
    let s = setup(pool.clone(), plain()).await;
    for i in 0..2 {
        s.app.contact(&s.ws, &format!("+628150000000{i}"), json!({})).await;
    }
    let id = s.create(json!({"kind": "all"})).await.expect(201).id("campaign_id");
    s.app.launch(&s.ws, &id).await;
    for (_, m) in s.messages_of(&id).await {
        let attempt = DomainEvent::Message(MessageEvent::Dispatched { attempt: 1, at: chrono::Utc::now() });
        s.app.append_raw(&s.ws, &format!("message-{m}"), s.app.commands().codec().encode(&attempt)).await;
    }
    s.app.eventually(&s.ws, &format!("/v1/campaigns/{id}"), |c| c["dispatched"] == 2).await;
    let Setup { app, ws, .. } = s;
    app.server.stop().await.unwrap();

    // A new process, whose crash policy gives up on an attempt after half a second.
    let app = TestApp::spawn_with(pool, dispatching(SandboxScript::default(), Duration::from_millis(500))).await;
    let done = completion(&app, &ws, &id).await;
    assert_eq!(done["counts"]["unknown"], 2, "{done}");
    let row = app.get(&format!("/v1/campaigns/{id}"), &ws.key).await.expect(200).body;
    assert_eq!((row["unknown"].as_i64(), row["dispatched"].as_i64()), (Some(2), Some(0)), "{row}");
}

/// A scheduled campaign paused and resumed before its time is scheduled again (not `running` with
/// nothing queued, which would complete it at once).
#[sqlx::test(migrator = "blazz_tests::MIGRATOR")]
async fn a_scheduled_campaign_paused_and_resumed_is_scheduled_again(pool: PgPool) {
    let s = setup(pool, plain()).await;
    s.app.contact(&s.ws, "+6281600000001", json!({})).await;
    let body = json!({"name": "Later", "channel_id": s.channel, "template_id": s.template, "audience": {"kind": "all"},
                      "schedule_at": "2099-01-01T09:00:00"});
    let id = s.app.post("/v1/campaigns", &s.ws.key, body).await.expect(201).id("campaign_id");
    s.app.post(&format!("/v1/campaigns/{id}/pause"), &s.ws.key, json!({"reason": "copy"})).await.expect(200);
    let resumed = s.app.post(&format!("/v1/campaigns/{id}/resume"), &s.ws.key, json!({})).await.expect(200);
    assert_eq!(resumed.body["status"], "scheduled", "{}", resumed.body);
    let row = s
        .app
        .get(&format!("/v1/campaigns/{id}?min_position={}", resumed.body["position"]), &s.ws.key)
        .await
        .expect(200)
        .body;
    assert_eq!(row["status"], "scheduled", "{row}");
}
