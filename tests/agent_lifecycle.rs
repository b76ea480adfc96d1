//! An agent's life after creation over HTTP and WebSocket: a role change its bound keys follow, and
//! deactivation (no availability, no assignment, keys and sockets refused, its conversations handed
//! back to the team and on to a colleague) and reactivation.

use blazz_tests::inbox::setup;
use blazz_tests::{Live, Settings, OPERATOR_TOKEN};
use serde_json::{json, Value};
use sqlx::PgPool;
use std::time::Duration;

#[sqlx::test(migrator = "blazz_tests::MIGRATOR")]
async fn a_bound_key_follows_its_agents_role(pool: PgPool) {
    let s = setup(pool, Settings::new(4, Some(OPERATOR_TOKEN.into()))).await;
    let (id, _) = s.inbound().await;
    let (sari, sari_key) = s.agent("Sari", "agent").await;
    let status = format!("/v1/conversations/{id}/status");
    s.app.post(&status, &sari_key, json!({"status": "pending"})).await.expect(200);

    let agent = format!("/v1/agents/{sari}");
    let changed = s.app.patch(&agent, &s.ws.key, json!({"role": "viewer", "name": "Sari W."})).await.expect(200);
    assert_eq!(
        (changed.body["role"].as_str(), changed.body["agent_id"].as_str()),
        (Some("viewer"), Some(sari.as_str()))
    );
    assert_eq!(s.app.post(&status, &sari_key, json!({"status": "open"})).await.expect(403).code(), "forbidden");
    let row = s.app.get(&format!("{agent}?min_position={}", changed.body["position"]), &s.ws.key).await.expect(200);
    assert_eq!((row.body["role"].as_str(), row.body["name"].as_str()), (Some("viewer"), Some("Sari W.")));

    // Never owner, never nothing, never a key of another role; an agent does not promote itself.
    assert_eq!(s.app.patch(&agent, &s.ws.key, json!({"role": "owner"})).await.expect(422).code(), "validation_failed");
    assert_eq!(s.app.patch(&agent, &s.ws.key, json!({})).await.expect(422).code(), "validation_failed");
    let (_, budi_key) = s.agent("Budi", "agent").await;
    s.app.patch(&agent, &budi_key, json!({"role": "admin"})).await.expect(403);
    let wrong = json!({"name": "k", "agent_id": sari, "role": "agent"});
    s.app.post("/v1/api-keys", &s.ws.key, wrong).await.expect(422);
    s.app.patch(&agent, &s.ws.key, json!({"role": "agent"})).await.expect(200);
    s.app.post(&status, &sari_key, json!({"status": "open"})).await.expect(200);
    let types = s.app.stream_types(&s.ws, &format!("agent-{sari}")).await;
    assert_eq!(types.iter().filter(|t| *t == "agent.role_changed").count(), 2, "{types:?}");
}

#[sqlx::test(migrator = "blazz_tests::MIGRATOR")]
async fn a_deactivated_agent_takes_no_work_loses_its_keys_and_hands_its_conversations_on(pool: PgPool) {
    let mut settings = Settings::new(4, Some(OPERATOR_TOKEN.into()));
    settings.edge.dispatch = true;
    let s = setup(pool, settings).await;
    // Given an auto-assigning team of two online agents, Sari holding the conversation,
    let team = s.app.post("/v1/teams", &s.ws.key, json!({"name": "Support", "auto_assign": true})).await;
    let team = team.expect(201).id("team_id");
    let (sari, sari_key) = s.agent("Sari", "agent").await;
    let (budi, budi_key) = s.agent("Budi", "agent").await;
    s.app.post(&format!("/v1/teams/{team}/members"), &s.ws.key, json!({"agent_ids": [sari, budi]})).await.expect(200);
    s.availability(&sari, &sari_key, "online").await;
    let (id, _) = s.inbound().await;
    let assign = format!("/v1/conversations/{id}/assignment");
    s.app.post(&assign, &s.ws.key, json!({"agent_id": sari, "team_id": team})).await.expect(200);
    s.availability(&budi, &budi_key, "online").await;
    let mut socket = Live::connect(&s.app, &sari_key, None).await;

    // when an admin deactivates Sari,
    let d = s.app.post(&format!("/v1/agents/{sari}/deactivate"), &s.ws.key, json!({})).await.expect(200);
    assert_eq!(d.body["active"], false);
    // then her keys and sockets are refused, she takes no conversation and sets no availability,
    let refused = s.app.get("/v1/conversations", &sari_key).await.expect(403);
    assert_eq!(refused.code(), "agent_deactivated");
    assert!(socket.closed_within(Duration::from_secs(5)).await, "her socket closes");
    let path = format!("/v1/agents/{sari}/availability");
    let a = s.app.post(&path, &s.ws.key, json!({"availability": "online"})).await.expect(409);
    assert_eq!(a.code(), "agent_deactivated");
    let manual = s.app.post(&assign, &s.ws.key, json!({"agent_id": sari})).await.expect(409);
    assert_eq!(manual.code(), "agent_deactivated");
    let key = json!({"name": "another", "agent_id": sari});
    assert_eq!(s.app.post("/v1/api-keys", &s.ws.key, key).await.expect(409).code(), "agent_deactivated");
    // and her conversation goes back to the team, which gives it to Budi.
    let conversation = format!("/v1/conversations/{id}");
    let taken = s.app.eventually(&s.ws, &conversation, |c| c["agent_id"] == budi.as_str()).await;
    assert_eq!(taken["team_id"], team.as_str());
    let events = s.app.get(&format!("/v1/history/streams/conversation-{id}"), &s.ws.key).await.expect(200).body;
    let reasons: Vec<&Value> = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["event_type"] == "conversation.assigned")
        .map(|e| &e["payload"]["reason"])
        .collect();
    assert_eq!(reasons, [&json!("manual"), &json!("agent_deactivated"), &json!("auto")]);
    let row = s.app.get(&format!("/v1/agents/{sari}"), &s.ws.key).await.expect(200).body;
    assert_eq!((row["active"].as_bool(), row["availability"].as_str()), (Some(false), Some("offline")), "{row}");

    // Reactivated, she is back offline and her key works again.
    s.app.post(&format!("/v1/agents/{sari}/reactivate"), &s.ws.key, json!({})).await.expect(200);
    s.app.get("/v1/conversations", &sari_key).await.expect(200);
    s.availability(&sari, &sari_key, "online").await;
    // An unknown agent is 404; agents may not deactivate anyone.
    s.app.post(&format!("/v1/agents/{}/deactivate", uuid::Uuid::now_v7()), &s.ws.key, json!({})).await.expect(404);
    s.app.post(&format!("/v1/agents/{budi}/deactivate"), &sari_key, json!({})).await.expect(403);
}
