//! Agents, teams and the work on a conversation over HTTP and WebSocket: keys bound to agents (and
//! the `X-Agent-Id` check), assignment by hand and automatically (round-robin under a cap),
//! priority, private notes, replies from the conversation, canned responses, and the demo's flow.

use blazz_domain::ids::{ContactId, ConversationId};
use blazz_tests::inbox::{setup, Setup};
use blazz_tests::{Live, Settings, OPERATOR_TOKEN};
use chrono::{Duration, Utc};
use reqwest::Method;
use serde_json::{json, Value};
use sqlx::PgPool;
use uuid::Uuid;

fn settings() -> Settings {
    Settings::new(4, Some(OPERATOR_TOKEN.into()))
}

/// Events of a stream with payload and metadata.
async fn events(s: &Setup, stream: &str) -> Vec<Value> {
    let a = s.app.get(&format!("/v1/history/streams/{stream}"), &s.ws.key).await.expect(200);
    a.body["events"].as_array().unwrap().clone()
}

#[sqlx::test(migrator = "blazz_tests::MIGRATOR")]
async fn agents_and_teams_are_created_listed_and_validated(pool: PgPool) {
    let s = setup(pool, settings()).await;
    let (sari, sari_key) = s.agent("Sari", "agent").await;
    let body = json!({"name": "Sari Two", "email": "SARI@example.com"});
    let first = s.app.post("/v1/agents", &s.ws.key, body.clone()).await.expect(201);
    let again = s.app.post("/v1/agents", &s.ws.key, body).await.expect(409);
    assert_eq!(again.code(), "email_taken", "{}", again.body);
    for bad in [
        json!({"name": "x", "email": "not-an-email"}),
        json!({"name": "", "email": "a@b.co"}),
        json!({"name": "x", "email": "o@b.co", "role": "owner"}),
        json!({"name": "x", "email": "o@b.co", "role": "root"}),
    ] {
        assert_eq!(s.app.post("/v1/agents", &s.ws.key, bad).await.expect(422).code(), "validation_failed");
    }
    // An agent may not create agents or teams.
    let a = s.app.post("/v1/agents", &sari_key, json!({"name": "x", "email": "x@b.co"})).await;
    assert_eq!(a.expect(403).code(), "forbidden");
    assert_eq!(s.app.post("/v1/teams", &sari_key, json!({"name": "T"})).await.expect(403).code(), "forbidden");

    let team = s.app.post("/v1/teams", &s.ws.key, json!({"name": "Support", "auto_assign": true})).await.expect(201);
    let team = team.id("team_id");
    assert_eq!(s.app.post("/v1/teams", &s.ws.key, json!({})).await.expect(422).code(), "validation_failed");
    let members = format!("/v1/teams/{team}/members");
    let unknown = Uuid::now_v7();
    let a = s.app.post(&members, &s.ws.key, json!({"agent_ids": [sari, unknown]})).await.expect(422);
    assert!(a.body["error"]["message"].as_str().unwrap().contains(&unknown.to_string()), "{}", a.body);
    // Another workspace's agent is unknown here too.
    let other = s.app.workspace().await;
    let foreign = s.app.post("/v1/agents", &other.key, json!({"name": "F", "email": "f@b.co"})).await.expect(201);
    s.app.post(&members, &s.ws.key, json!({"agent_ids": [foreign.id("agent_id")]})).await.expect(422);
    let added = s.app.post(&members, &s.ws.key, json!({"agent_ids": [sari, first.id("agent_id")]})).await.expect(200);
    assert_eq!(added.body["members"].as_array().unwrap().len(), 2, "{}", added.body);
    let patch = format!("/v1/teams/{team}");
    s.app.patch(&patch, &s.ws.key, json!({"max_open_per_agent": 0})).await.expect(422);
    let updated = s.app.patch(&patch, &s.ws.key, json!({"max_open_per_agent": 3})).await.expect(200);
    s.app.post(&format!("{members}/remove"), &s.ws.key, json!({"agent_ids": [first.id("agent_id")]})).await.expect(200);

    let position = updated.body["position"].clone();
    let t = s.app.get(&format!("/v1/teams/{team}?min_position={position}"), &s.ws.key).await.expect(200).body;
    assert_eq!(
        (t["name"].as_str(), t["auto_assign"].as_bool(), t["max_open_per_agent"].as_i64()),
        (Some("Support"), Some(true), Some(3))
    );
    let list = s.app.get("/v1/agents", &s.ws.key).await.expect(200).body;
    let row = list["items"].as_array().unwrap().iter().find(|a| a["agent_id"] == sari.as_str()).unwrap().clone();
    assert_eq!((row["availability"].as_str(), row["open_conversations"].as_i64()), (Some("offline"), Some(0)), "{row}");
    assert_eq!(s.app.get(&format!("/v1/agents/{sari}"), &other.key).await.expect(404).code(), "not_found");
}

#[sqlx::test(migrator = "blazz_tests::MIGRATOR")]
async fn a_key_bound_to_an_agent_names_it_on_every_change_and_no_header_borrows_another(pool: PgPool) {
    let s = setup(pool, settings()).await;
    let (id, _) = s.inbound().await;
    let (sari, sari_key) = s.agent("Sari", "agent").await;
    let (budi, _) = s.agent("Budi", "admin").await;
    let path = format!("/v1/conversations/{id}/status");
    let with = |key: &str, agent: &str| {
        let (path, key, agent) = (path.clone(), key.to_owned(), agent.to_owned());
        let app = &s.app;
        async move {
            app.call(Method::POST, &path, Some(&key), Some(json!({"status": "pending"})), &[("x-agent-id", &agent)])
                .await
        }
    };
    with(&sari_key, &sari).await.expect(200);
    assert_eq!(with(&sari_key, &budi).await.expect(403).code(), "agent_mismatch");
    assert_eq!(with(&s.ws.key, &sari).await.expect(403).code(), "agent_mismatch", "an owner key is not an agent");
    assert_eq!(with(&sari_key, "nobody").await.expect(400).code(), "invalid_header");
    let last = events(&s, &format!("conversation-{id}")).await.pop().unwrap();
    assert_eq!(last["event_type"], "conversation.status_changed");
    assert_eq!(last["metadata"]["agent_id"], sari.as_str(), "{last}");

    // An agent sets its own availability, not another's; a key takes its agent's role.
    s.availability(&sari, &sari_key, "online").await;
    let a = s.app.post(&format!("/v1/agents/{budi}/availability"), &sari_key, json!({"availability": "busy"})).await;
    assert_eq!(a.expect(403).code(), "forbidden");
    let bad = json!({"name": "k", "agent_id": sari, "role": "admin"});
    assert_eq!(s.app.post("/v1/api-keys", &s.ws.key, bad).await.expect(422).code(), "validation_failed");
    let unknown = json!({"name": "k", "agent_id": Uuid::now_v7()});
    assert_eq!(s.app.post("/v1/api-keys", &s.ws.key, unknown).await.expect(404).code(), "not_found");
    assert_eq!(
        s.app.post("/v1/api-keys", &s.ws.key, json!({"name": "k"})).await.expect(422).code(),
        "validation_failed"
    );
    let issued = events(&s, &format!("workspace-{}", s.ws.id)).await;
    assert!(issued.iter().any(|e| e["payload"]["agent_id"] == sari.as_str()), "the key's agent is on record");
}

#[sqlx::test(migrator = "blazz_tests::MIGRATOR")]
async fn assignment_priority_and_notes_show_in_the_inbox_filters_and_live(pool: PgPool) {
    let s = setup(pool, settings()).await;
    let (id, _) = s.inbound().await;
    let (sari, sari_key) = s.agent("Sari", "agent").await;
    let team = s.app.post("/v1/teams", &s.ws.key, json!({"name": "Billing"})).await.expect(201).id("team_id");
    let mut live = Live::connect(&s.app, &s.ws.key, None).await;
    let assign = format!("/v1/conversations/{id}/assignment");

    let a = s.app.post(&assign, &s.ws.key, json!({"agent_id": sari, "team_id": team})).await.expect(200);
    assert_eq!((a.body["agent_id"].as_str(), a.body["team_id"].as_str()), (Some(sari.as_str()), Some(team.as_str())));
    let mut delta = live.next_of("conversation").await;
    while delta["changed"].get("agent_id").is_none() {
        delta = live.next_of("conversation").await;
    }
    assert_eq!((delta["id"].as_str(), &delta["changed"]["agent_id"]), (Some(id.as_str()), &json!(sari)), "{delta}");
    let position = &a.body["position"];
    let mine = s.app.get(&format!("/v1/conversations?assignee={sari}&min_position={position}"), &s.ws.key).await;
    assert_eq!(mine.expect(200).body["items"].as_array().unwrap().len(), 1);
    let of_team = s.app.get(&format!("/v1/conversations?team={team}"), &s.ws.key).await.expect(200);
    assert_eq!(of_team.body["items"].as_array().unwrap().len(), 1);
    assert_eq!(s.app.get("/v1/conversations?unassigned=true", &s.ws.key).await.expect(200).body["items"], json!([]));
    let agents = s.app.get("/v1/agents", &s.ws.key).await.expect(200).body;
    assert_eq!(
        (agents["items"][0]["open_conversations"].as_i64(), agents["items"][0]["unread_conversations"].as_i64()),
        (Some(1), Some(1))
    );

    // Unknown agent or team; no field at all; another workspace's conversation.
    let a = s.app.post(&assign, &s.ws.key, json!({"agent_id": Uuid::now_v7()})).await.expect(422);
    assert_eq!(a.body["error"]["details"]["field"], "agent_id", "{}", a.body);
    s.app.post(&assign, &s.ws.key, json!({"team_id": Uuid::now_v7()})).await.expect(404);
    s.app.post(&assign, &s.ws.key, json!({})).await.expect(422);
    let other = s.app.workspace().await;
    s.app.post(&assign, &other.key, json!({"agent_id": null})).await.expect(404);

    // Unassigning the agent keeps the team.
    let a = s.app.post(&assign, &sari_key, json!({"agent_id": null})).await.expect(200);
    assert_eq!((a.body["agent_id"].clone(), a.body["team_id"].as_str()), (Value::Null, Some(team.as_str())));
    let position = &a.body["position"];
    let waiting = s.app.get(&format!("/v1/conversations?unassigned=true&min_position={position}"), &s.ws.key).await;
    assert_eq!(waiting.expect(200).body["items"][0]["team_id"], team.as_str());

    let p = s.app.post(&format!("/v1/conversations/{id}/priority"), &sari_key, json!({"priority": "urgent"})).await;
    let position = &p.expect(200).body["position"];
    let urgent = s.app.get(&format!("/v1/conversations?priority=urgent&min_position={position}"), &s.ws.key).await;
    assert_eq!(urgent.expect(200).body["items"].as_array().unwrap().len(), 1);
    s.app.post(&format!("/v1/conversations/{id}/priority"), &sari_key, json!({"priority": "asap"})).await.expect(422);
    assert_eq!(s.app.get("/v1/conversations?priority=asap", &s.ws.key).await.expect(422).code(), "validation_failed");

    // A private note: in the inbox with its author, never a message to WhatsApp.
    let notes = format!("/v1/conversations/{id}/notes");
    let n = s.app.post(&notes, &sari_key, json!({"text": "Called back, waiting for the invoice"})).await.expect(201);
    s.app.post(&notes, &sari_key, json!({"text": "  "})).await.expect(422);
    let nul = s.app.post(&notes, &sari_key, json!({"text": "a\u{0}b"})).await.expect(422);
    assert_eq!(nul.body["error"]["details"]["field"], "text");
    let position = &n.body["position"];
    let listed = s.app.get(&format!("{notes}?min_position={position}"), &s.ws.key).await.expect(200).body;
    let note = &listed["items"][0];
    assert_eq!(
        (note["text"].as_str(), note["agent_id"].as_str()),
        (Some("Called back, waiting for the invoice"), Some(sari.as_str()))
    );
    assert_eq!(listed["items"].as_array().unwrap().len(), 1);
    let messages = s.app.get(&format!("/v1/messages?conversation_id={id}"), &s.ws.key).await.expect(200).body;
    assert_eq!(messages["items"], json!([]), "a note is not a message");
    let viewer = s.key("viewer").await;
    s.app.post(&notes, &viewer, json!({"text": "x"})).await.expect(403);
}

#[sqlx::test(migrator = "blazz_tests::MIGRATOR")]
async fn a_reply_from_the_conversation_uses_its_channel_and_contact_and_the_24_hour_rule(pool: PgPool) {
    let s = setup(pool, settings()).await;
    let (id, _) = s.inbound().await;
    let reply = format!("/v1/conversations/{id}/messages");
    let text = json!({"type": "text", "text": {"body": "Halo, ada yang bisa dibantu?"}});
    let sent = s.app.post(&reply, &s.ws.key, text.clone()).await.expect(202);
    let position = &sent.body["position"];
    let message =
        s.app.get(&format!("/v1/messages/{}?min_position={position}", sent.id("message_id")), &s.ws.key).await;
    let message = message.expect(200).body;
    assert_eq!(
        (message["channel_id"].as_str(), message["contact_id"].as_str()),
        (Some(s.channel.to_string().as_str()), Some(s.contact.to_string().as_str()))
    );
    assert_eq!(message["conversation_id"], id.as_str());
    let mut addressed = text.clone();
    addressed["channel_id"] = json!(s.channel);
    assert_eq!(s.app.post(&reply, &s.ws.key, addressed).await.expect(422).code(), "validation_failed");
    s.app.post(&format!("/v1/conversations/{}/messages", Uuid::now_v7()), &s.ws.key, text.clone()).await.expect(404);

    // A contact who last wrote 25 hours ago: the window is closed, only templates go.
    let late = s.app.contact(&s.ws, "+6281234567899", json!({})).await;
    let late = ContactId::from_uuid(Uuid::parse_str(&late).unwrap());
    let ctx = s.app.system(&s.ws);
    let wrote = Utc::now() - Duration::hours(25);
    s.app.commands().record_inbound(&ctx, s.channel, late, "wamid.late".into(), wrote).await.unwrap();
    let closed = format!("/v1/conversations/{}/messages", ConversationId::for_pair(s.channel, late));
    assert_eq!(s.app.post(&closed, &s.ws.key, text).await.expect(422).code(), "outside_service_window");
}

/// A contact of the setup's workspace writing for the first time: its conversation id.
async fn first_inbound(s: &Setup, phone: &str) -> String {
    let contact = s.app.contact(&s.ws, phone, json!({})).await;
    let contact = ContactId::from_uuid(Uuid::parse_str(&contact).unwrap());
    let ctx = s.app.system(&s.ws);
    let wamid = format!("wamid.{}", Uuid::now_v7());
    s.app.commands().record_inbound(&ctx, s.channel, contact, wamid, Utc::now()).await.unwrap();
    ConversationId::for_pair(s.channel, contact).to_string()
}

#[sqlx::test(migrator = "blazz_tests::MIGRATOR")]
async fn new_conversations_go_to_the_channels_team_round_robin_over_online_agents_under_the_cap(pool: PgPool) {
    let mut settings = settings();
    settings.edge.dispatch = true;
    let s = setup(pool, settings).await;
    // Given a team that assigns automatically, at most one open conversation per agent, with two
    // online agents and one offline, serving the channel's inbox;
    let body = json!({"name": "Support", "auto_assign": true, "max_open_per_agent": 1});
    let team = s.app.post("/v1/teams", &s.ws.key, body).await.expect(201).id("team_id");
    let (sari, sari_key) = s.agent("Sari", "agent").await;
    let (budi, budi_key) = s.agent("Budi", "agent").await;
    let (tono, _) = s.agent("Tono", "agent").await; // offline
    let members = json!({"agent_ids": [sari, budi, tono]});
    s.app.post(&format!("/v1/teams/{team}/members"), &s.ws.key, members).await.expect(200);
    s.availability(&sari, &sari_key, "online").await;
    s.availability(&budi, &budi_key, "online").await;
    s.app.patch(&format!("/v1/channels/{}", s.channel), &s.ws.key, json!({"inbox_team_id": team})).await.expect(200);

    // when three customers write one after another,
    let mut conversations = vec![];
    for (n, phone) in ["+6281100000001", "+6281100000002", "+6281100000003"].iter().enumerate() {
        let id = first_inbound(&s, phone).await;
        if n < 2 {
            let path = format!("/v1/conversations/{id}");
            s.app.eventually(&s.ws, &path, |c| c["agent_id"].is_string()).await;
        }
        conversations.push(id);
    }
    // then the first two go one to each online agent, and the third waits in the team (both at the cap).
    let third = format!("/v1/conversations/{}", conversations[2]);
    let waiting = s.app.eventually(&s.ws, &third, |c| c["team_id"] == team.as_str()).await;
    assert_eq!(waiting["agent_id"], Value::Null, "{waiting}");
    let mut holders = vec![];
    for id in &conversations[..2] {
        let c = s.app.get(&format!("/v1/conversations/{id}"), &s.ws.key).await.expect(200).body;
        assert_eq!(c["team_id"], team.as_str());
        holders.push(c["agent_id"].as_str().unwrap().to_owned());
    }
    holders.sort();
    let mut online = vec![sari.clone(), budi.clone()];
    online.sort();
    assert_eq!(holders, online, "one each, none to the offline agent");
    let assigned = events(&s, &format!("conversation-{}", conversations[0])).await;
    let assigned = assigned.iter().find(|e| e["event_type"] == "conversation.assigned").unwrap();
    assert_eq!(
        (assigned["payload"]["reason"].as_str(), assigned["metadata"]["actor"].as_str()),
        (Some("auto"), Some("system:assigner"))
    );

    // When the first conversation's agent resolves it, the waiting one goes to them.
    let first = s.app.get(&format!("/v1/conversations/{}", conversations[0]), &s.ws.key).await.expect(200).body;
    let holder = first["agent_id"].as_str().unwrap().to_owned();
    let key = if holder == sari { &sari_key } else { &budi_key };
    let path = format!("/v1/conversations/{}/status", conversations[0]);
    s.app.post(&path, key, json!({"status": "resolved"})).await.expect(200);
    let taken = s.app.eventually(&s.ws, &third, |c| c["agent_id"].is_string()).await;
    assert_eq!(taken["agent_id"], holder.as_str(), "{taken}");
}

#[sqlx::test(migrator = "blazz_tests::MIGRATOR")]
async fn the_demo_shows_a_sandbox_reply_landing_in_an_open_auto_assigned_conversation(pool: PgPool) {
    let mut settings = settings();
    settings.edge.dispatch = true;
    settings.edge.sandbox = blazz_commands::provider::sandbox::SandboxScript {
        reply: Some(blazz_api::demo::DEMO_REPLY.into()),
        ..blazz_tests::quick_sandbox()
    };
    let app = blazz_tests::TestApp::spawn_with(pool, settings).await;
    let demo = blazz_api::demo::create(&app.server.state).await.unwrap();
    let ws = blazz_tests::Ws { id: demo.workspace_id.to_string(), key: demo.api_key.clone() };
    let contact = app.contact(&ws, "+6281234567890", json!({"first_name": "Budi"})).await;
    let template = app.template(&ws, "welcome", "UTILITY", "APPROVED").await;
    let body =
        json!({"channel_id": demo.channel_id, "contact_id": contact, "type": "template", "template": {"id": template}});
    app.post("/v1/messages", &ws.key, body).await.expect(202);
    // The sandbox reads it and answers; the answer opens the conversation, which goes to the agent.
    let path = format!("/v1/conversations?contact_id={contact}");
    let list = app.eventually(&ws, &path, |l| l["items"][0]["agent_id"].is_string()).await;
    let c = &list["items"][0];
    assert_eq!(
        (c["status"].as_str(), c["agent_id"].as_str()),
        (Some("open"), Some(demo.agent_id.to_string().as_str())),
        "{c}"
    );
    assert_eq!((c["last_direction"].as_str(), c["unread_count"].as_i64()), (Some("in"), Some(1)), "{c}");
    // The agent's own key sees it as theirs.
    let mine = app.get(&format!("/v1/conversations?assignee={}", demo.agent_id), &demo.agent_key).await.expect(200);
    assert_eq!(mine.body["items"].as_array().unwrap().len(), 1);
}

#[sqlx::test(migrator = "blazz_tests::MIGRATOR")]
async fn canned_responses_fill_in_the_contact_and_the_agent_and_keep_their_codes_unique(pool: PgPool) {
    let s = setup(pool, settings()).await;
    let (id, _) = s.inbound().await;
    let (_, sari_key) = s.agent("Sari", "agent").await;
    let body = json!({"short_code": "/Thanks", "text": "Thank you, {{contact.name}}! — {{agent.name}}"});
    let created = s.app.post("/v1/canned-responses", &sari_key, body).await.expect(201);
    assert_eq!(created.body["short_code"], "thanks");
    let taken = s.app.post("/v1/canned-responses", &s.ws.key, json!({"short_code": "thanks", "text": "x"})).await;
    assert_eq!(taken.expect(409).code(), "short_code_taken");
    let bad = json!({"short_code": "total", "text": "{{order.total}}"});
    assert_eq!(s.app.post("/v1/canned-responses", &s.ws.key, bad).await.expect(422).code(), "validation_failed");
    let tier = json!({"short_code": "tier", "text": "Your tier: {{contact.tier}}"});
    s.app.post("/v1/canned-responses", &s.ws.key, tier).await.expect(201);
    let position = &created.body["position"];
    let listed = s.app.get(&format!("/v1/canned-responses?min_position={position}"), &s.ws.key).await.expect(200);
    assert_eq!(listed.body["items"][0]["short_code"], "thanks", "{}", listed.body);

    // A reply by short code: filled in for the contact (Budi) and the replying agent (Sari).
    let reply = format!("/v1/conversations/{id}/messages");
    let canned = |code: &str| json!({"type": "canned", "canned": {"short_code": code}});
    let sent = s.app.post(&reply, &sari_key, canned("thanks")).await.expect(202);
    let position = &sent.body["position"];
    let m = s.app.get(&format!("/v1/messages/{}?min_position={position}", sent.id("message_id")), &s.ws.key).await;
    assert_eq!(m.expect(200).body["preview"], "Thank you, Budi! — Sari");
    // A field without a value is refused, not sent half-filled; an unknown code is not found, also
    // for another workspace.
    let a = s.app.post(&reply, &sari_key, canned("tier")).await.expect(422);
    assert_eq!(
        (a.code(), a.body["error"]["details"]["variable"].as_str()),
        ("missing_template_variable", Some("contact.tier"))
    );
    assert_eq!(s.app.post(&reply, &sari_key, canned("nope")).await.expect(404).code(), "not_found");
    let other = s.app.workspace().await;
    let channel = s.app.channel(&other).await;
    let contact = s.app.contact(&other, "+6281234567890", json!({})).await;
    let body =
        json!({"channel_id": channel, "contact_id": contact, "type": "canned", "canned": {"short_code": "thanks"}});
    assert_eq!(s.app.post("/v1/messages", &other.key, body).await.expect(404).code(), "not_found");

    // Deleted: gone from the list, and its code is free again.
    let path = format!("/v1/canned-responses/{}", created.id("canned_response_id"));
    let gone = s.app.call(Method::DELETE, &path, Some(&s.ws.key), None, &[]).await.expect(200);
    let position = &gone.body["position"];
    let listed = s.app.get(&format!("/v1/canned-responses?min_position={position}"), &s.ws.key).await.expect(200);
    assert_eq!(listed.body["items"].as_array().unwrap().len(), 1);
    s.app.post("/v1/canned-responses", &s.ws.key, json!({"short_code": "thanks", "text": "Thanks!"})).await.expect(201);
}
