//! Reports against hand-computed figures: a scripted day of an inbox (the clock fixed through the
//! commands' times, no sleeps) and a campaign whose recipients answer within 24 hours or later.

use blazz_commands::handlers::message::{SendContent, SendMessage};
use blazz_commands::CommandContext;
use blazz_domain::conversation::ConversationStatus;
use blazz_domain::ids::{AgentId, ContactId, ConversationId, TeamId};
use blazz_tests::inbox::{setup, Setup};
use blazz_tests::{Settings, OPERATOR_TOKEN};
use chrono::{DateTime, Duration, TimeZone, Utc};
use serde_json::{json, Value};
use sqlx::PgPool;
use uuid::Uuid;

/// 2026-11-30 at `h:m` UTC: the scripted day.
fn at(h: u32, m: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 30, h, m, 0).unwrap()
}

struct Day {
    s: Setup,
    team: TeamId,
}

impl Day {
    fn ctx(&self, agent: Option<&str>, now: DateTime<Utc>) -> CommandContext {
        let agent_id = agent.map(|a| AgentId::from_uuid(Uuid::parse_str(a).unwrap()));
        CommandContext { agent_id, now, ..self.s.app.system(&self.s.ws) }
    }

    async fn contact(&self, phone: &str) -> ContactId {
        ContactId::from_uuid(Uuid::parse_str(&self.s.app.contact(&self.s.ws, phone, json!({})).await).unwrap())
    }

    async fn writes(&self, contact: ContactId, when: DateTime<Utc>) -> i64 {
        let ctx = self.ctx(None, when);
        let wamid = format!("wamid.{}", Uuid::now_v7());
        let r = self.s.app.commands().record_inbound(&ctx, self.s.channel, contact, wamid, when).await.unwrap();
        r.position.unwrap()
    }

    fn conversation(&self, contact: ContactId) -> ConversationId {
        ConversationId::for_pair(self.s.channel, contact)
    }

    async fn assign(&self, contact: ContactId, agent: &str, when: DateTime<Utc>) {
        let ctx = self.ctx(None, when);
        let agent = Some(Some(AgentId::from_uuid(Uuid::parse_str(agent).unwrap())));
        let c = self.s.app.commands();
        c.assign_conversation(&ctx, self.conversation(contact), agent, Some(Some(self.team))).await.unwrap();
    }

    async fn replies(&self, contact: ContactId, agent: &str, when: DateTime<Utc>) -> i64 {
        let ctx = self.ctx(Some(agent), when);
        let content = SendContent::Text { body: "On it".into(), preview_url: false };
        let input = SendMessage { channel_id: self.s.channel, contact_id: contact, content, reply_to: None };
        self.s.app.commands().send_message(&ctx, input).await.unwrap().position.unwrap()
    }

    async fn resolves(&self, contact: ContactId, agent: &str, when: DateTime<Utc>) -> i64 {
        let ctx = self.ctx(Some(agent), when);
        let c = self.s.app.commands();
        let r = c.set_conversation_status(&ctx, self.conversation(contact), ConversationStatus::Resolved, None).await;
        r.unwrap().position.unwrap()
    }

    async fn report(&self, by: &str, position: i64) -> Vec<Value> {
        let path = format!("/v1/reports/inbox?from=2026-11-30&to=2026-11-30&by={by}&min_position={position}");
        let a = self.s.app.get(&path, &self.s.ws.key).await.expect(200);
        a.body["items"].as_array().unwrap().clone()
    }
}

/// The figures of a row: opened, resolved, first response median and p90, resolution median and
/// p90 (seconds), messages sent.
fn figures(row: &Value) -> (i64, i64, Option<f64>, Option<f64>, Option<f64>, Option<f64>, i64) {
    let f = |k: &str| row[k].as_f64();
    (
        row["conversations_opened"].as_i64().unwrap(),
        row["conversations_resolved"].as_i64().unwrap(),
        f("first_response_median_seconds"),
        f("first_response_p90_seconds"),
        f("resolution_median_seconds"),
        f("resolution_p90_seconds"),
        row["messages_sent"].as_i64().unwrap(),
    )
}

#[sqlx::test(migrator = "blazz_tests::MIGRATOR")]
async fn a_scripted_day_reports_the_hand_computed_figures_per_agent_team_and_workspace(pool: PgPool) {
    let s = setup(pool, Settings::new(4, Some(OPERATOR_TOKEN.into()))).await;
    let team = s.app.post("/v1/teams", &s.ws.key, json!({"name": "Support"})).await.expect(201).id("team_id");
    let (sari, _) = s.agent("Sari", "agent").await;
    let (budi, _) = s.agent("Budi", "agent").await;
    let day = Day { s, team: TeamId::from_uuid(Uuid::parse_str(&team).unwrap()) };
    let (c1, c2, c3) =
        (day.contact("+6281100000001").await, day.contact("+6281100000002").await, day.contact("+6281100000003").await);

    // c1: writes 09:00, Sari answers 09:05 (300 s), resolves 09:30 (1,800 s);
    day.writes(c1, at(9, 0)).await;
    day.assign(c1, &sari, at(9, 1)).await;
    day.replies(c1, &sari, at(9, 5)).await;
    day.resolves(c1, &sari, at(9, 30)).await;
    // c2: writes 10:00, Budi answers 10:20 (1,200 s), resolves 12:00 (7,200 s);
    day.writes(c2, at(10, 0)).await;
    day.assign(c2, &budi, at(10, 2)).await;
    day.replies(c2, &budi, at(10, 20)).await;
    day.resolves(c2, &budi, at(12, 0)).await;
    // c3: writes 11:00, Sari answers 11:01 (60 s) and again 11:02 (no second first response); open;
    day.writes(c3, at(11, 0)).await;
    day.assign(c3, &sari, at(11, 0)).await;
    day.replies(c3, &sari, at(11, 1)).await;
    day.replies(c3, &sari, at(11, 2)).await;
    // c1 writes again 13:00: a new cycle, answered 13:10 (600 s), resolved 13:40 (2,400 s).
    day.writes(c1, at(13, 0)).await;
    day.replies(c1, &sari, at(13, 10)).await;
    let last = day.resolves(c1, &sari, at(13, 40)).await;

    // Per agent: Sari has three cycles (first responses 60, 300, 600: median 300, p90 540;
    // resolutions 1,800 and 2,400: median 2,100, p90 2,340) and four messages; Budi one.
    let rows = day.report("agent", last).await;
    assert_eq!(rows.len(), 2, "{rows:?}");
    let of = |agent: &str| rows.iter().find(|r| r["agent_id"] == agent).map(figures).unwrap();
    assert_eq!(of(&sari), (3, 2, Some(300.0), Some(540.0), Some(2100.0), Some(2340.0), 4));
    assert_eq!(of(&budi), (1, 1, Some(1200.0), Some(1200.0), Some(7200.0), Some(7200.0), 1));
    assert!(rows.iter().all(|r| r["team_id"] == team.as_str() && r["day"] == "2026-11-30"));
    // Per team: first responses 60, 300, 600, 1,200 (median 450, p90 1,020); resolutions 1,800,
    // 2,400, 7,200 (median 2,400, p90 6,240); five messages. The workspace: the same, one team.
    let team_rows = day.report("team", last).await;
    assert_eq!(team_rows.len(), 1);
    let expected = (4, 3, Some(450.0), Some(1020.0), Some(2400.0), Some(6240.0), 5);
    assert_eq!(figures(&team_rows[0]), expected);
    assert_eq!(figures(&day.report("workspace", last).await[0]), expected);
    // Another day has nothing; odd parameters are refused.
    let other = day.s.app.get("/v1/reports/inbox?from=2026-11-29&to=2026-11-29", &day.s.ws.key).await.expect(200);
    assert_eq!(other.body["items"], json!([]));
    for bad in ["by=month", "from=2026-12-01&to=2026-11-30", "from=-200000-01-01", "from=1969-12-31"] {
        day.s.app.get(&format!("/v1/reports/inbox?{bad}"), &day.s.ws.key).await.expect(400);
    }
    // The figures are read models: rebuilt from the log, they are the same.
    let before = day.report("agent", last).await;
    let store = day.s.app.server.state.commands.store().clone();
    let projector = blazz_projections::read_models::by_name("reports").unwrap();
    let codec = blazz_commands::codec::Codec::new();
    blazz_projections::rebuild::rebuild(&day.s.app.pool, store, &codec, projector, |_| {}).await.unwrap();
    assert_eq!(day.report("agent", last).await, before);
}

#[sqlx::test(migrator = "blazz_tests::MIGRATOR")]
async fn a_campaign_reports_its_delivery_read_and_24_hour_reply_rates(pool: PgPool) {
    let mut settings = Settings::new(4, Some(OPERATOR_TOKEN.into()));
    settings.edge.dispatch = true;
    settings.edge.sandbox = blazz_tests::quick_sandbox();
    let app = blazz_tests::TestApp::spawn_with(pool, settings).await;
    let ws = app.workspace().await;
    let (channel, _) = app.channel_of(&ws, "sandbox").await;
    app.credentials(&ws, &channel).await;
    let mut contacts = vec![];
    for phone in ["+6281200000001", "+6281200000002", "+6281200000003", "+6281200000004"] {
        contacts.push(app.contact(&ws, phone, json!({"first_name": "Budi"})).await);
    }
    let template = app.template(&ws, "promo", "MARKETING", "APPROVED").await;
    let body = json!({"name": "flash", "channel_id": channel, "template_id": template, "audience": {"kind": "all"}});
    let campaign = app.post("/v1/campaigns", &ws.key, body).await.expect(201).id("campaign_id");
    app.launch(&ws, &campaign).await;
    app.eventually(&ws, &format!("/v1/campaigns/{campaign}"), |c| c["status"] == "completed" && c["read"] == 4).await;

    // Two recipients answer within 24 hours of the campaign's message (one of them twice), one
    // after 25 hours, one never: replies 2 of 4 read.
    let queued: DateTime<Utc> = {
        let history = app.get(&format!("/v1/history/streams/campaign-{campaign}"), &ws.key).await.expect(200).body;
        let launched =
            history["events"].as_array().unwrap().iter().find(|e| e["event_type"] == "campaign.launched").cloned();
        launched.unwrap()["payload"]["at"].as_str().unwrap().parse().unwrap()
    };
    let ctx = app.system(&ws);
    let ch = blazz_domain::ids::ChannelId::from_uuid(Uuid::parse_str(&channel).unwrap());
    let contact = |i: usize| ContactId::from_uuid(Uuid::parse_str(&contacts[i]).unwrap());
    let mut last = 0;
    for (i, after) in
        [(0, Duration::hours(2)), (0, Duration::hours(3)), (1, Duration::hours(23)), (2, Duration::hours(25))]
    {
        let wamid = format!("wamid.{}", Uuid::now_v7());
        let r = app.commands().record_inbound(&ctx, ch, contact(i), wamid, queued + after).await.unwrap();
        last = r.position.unwrap();
    }
    let report =
        app.get(&format!("/v1/reports/campaigns/{campaign}?min_position={last}"), &ws.key).await.expect(200).body;
    assert_eq!((report["delivery_rate"].as_f64(), report["read_rate"].as_f64()), (Some(1.0), Some(1.0)), "{report}");
    assert_eq!(
        (report["replies_within_24h"].as_i64(), report["reply_rate"].as_f64()),
        (Some(2), Some(0.5)),
        "{report}"
    );
    let other = app.workspace().await;
    app.get(&format!("/v1/reports/campaigns/{campaign}"), &other.key).await.expect(404);
}
