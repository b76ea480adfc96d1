//! The Meta Cloud API provider against a local fake Graph API over real HTTP: request shape, headers
//! and token; success and error answers and their classes; and the dispatcher sending queued messages
//! through it.

use blazz_commands::credentials::{ChannelSecrets, Secret};
use blazz_commands::provider::meta::{MetaConfig, MetaProvider};
use blazz_commands::provider::{Outbound, Provider, SendError, Sender};
use blazz_domain::ids::{ChannelId, MessageId};
use blazz_domain::message::{MediaKind, MediaRef, MessageContent, ReplyButton};
use blazz_domain::provider::ErrorClass;
use blazz_domain::values::PhoneNumber;
use blazz_tests::fake_graph::{FakeGraph, Reply};
use blazz_tests::{Settings, TestApp, OPERATOR_TOKEN};
use serde_json::json;
use sqlx::PgPool;
use uuid::Uuid;

fn provider(base: String) -> MetaProvider {
    MetaProvider::new(MetaConfig { base_url: base, api_version: "v21.0".into(), ..MetaConfig::default() })
}

fn secrets() -> ChannelSecrets {
    ChannelSecrets {
        access_token: Secret::new("EAAG-test-token"),
        app_secret: Secret::new("s"),
        verify_token: Secret::new("v"),
    }
}

fn sender() -> Sender {
    Sender { channel_id: ChannelId::from_uuid(Uuid::from_u128(1)), phone_number_id: "106540352242922".into() }
}

fn outbound(to: &str, content: MessageContent) -> Outbound {
    Outbound {
        message_id: MessageId::from_uuid(Uuid::now_v7()),
        to: blazz_domain::values::Destination::Phone(PhoneNumber::parse(to).unwrap()),
        content,
        reply_to: None,
    }
}

#[tokio::test]
async fn every_content_kind_goes_out_in_the_documented_shape_with_the_token() {
    let graph = FakeGraph::start().await;
    let meta = provider(graph.url());
    let contents = [
        MessageContent::Text { body: "Halo Budi".into(), preview_url: false },
        MessageContent::Media {
            media_kind: MediaKind::Image,
            media: MediaRef::Id("1037543291543636".into()),
            caption: Some("c".into()),
            filename: None,
        },
        MessageContent::Media {
            media_kind: MediaKind::Document,
            media: MediaRef::Link("https://x/inv.pdf".into()),
            caption: None,
            filename: Some("inv.pdf".into()),
        },
        MessageContent::Interactive {
            body: "Pick".into(),
            buttons: vec![ReplyButton { id: "y".into(), title: "Yes".into() }],
            header: None,
            footer: None,
        },
    ];
    let mut ours = vec![];
    for content in contents {
        let m = outbound("+6281234567890", content);
        let accepted = meta.send(&sender(), &secrets(), &m).await.expect("accepted");
        assert!(accepted.provider_message_id.starts_with("wamid.FAKE."));
        ours.push(m.message_id.as_uuid().to_string());
    }
    let calls = graph.calls();
    assert_eq!(calls.len(), 4);
    for (call, ours) in calls.iter().zip(&ours) {
        assert_eq!(call.path, "/v21.0/106540352242922/messages");
        assert_eq!(call.authorization, "Bearer EAAG-test-token");
        assert!(call.content_type.starts_with("application/json"));
        assert_eq!(call.body["messaging_product"], "whatsapp");
        assert_eq!(call.body["to"], "6281234567890");
        assert_eq!(call.body["biz_opaque_callback_data"], ours.as_str());
    }
    let types: Vec<&str> = calls.iter().map(|c| c.body["type"].as_str().unwrap()).collect();
    assert_eq!(types, vec!["text", "image", "document", "interactive"]);
    assert_eq!(calls[0].body["text"], json!({"preview_url": false, "body": "Halo Budi"}));
    assert_eq!(calls[2].body["document"]["filename"], "inv.pdf");
}

#[tokio::test]
async fn error_answers_are_classified_by_code_and_unreadable_ones_are_unknown() {
    let graph = FakeGraph::start().await;
    let meta = provider(graph.url());
    let cases = [
        ("+15550000001", 131056, ErrorClass::RetryLater),
        ("+15550000002", 130429, ErrorClass::RetryLater),
        ("+15550000003", 131026, ErrorClass::Final),
        ("+15550000004", 131047, ErrorClass::Final),
        ("+15550000005", 132015, ErrorClass::StopCampaign),
        ("+15550000006", 190, ErrorClass::HaltChannel),
        ("+15550000007", 368, ErrorClass::HaltChannel),
    ];
    for (to, code, class) in cases {
        graph.reply_to(to.trim_start_matches('+'), Reply::error(code));
        let text = MessageContent::Text { body: "x".into(), preview_url: false };
        match meta.send(&sender(), &secrets(), &outbound(to, text)).await {
            Err(SendError::Rejected(e)) => {
                assert_eq!((e.code, e.class()), (code, class));
                assert!(e.details.as_deref().unwrap_or("").contains(&format!("details of {code}")), "{e:?}");
            }
            other => panic!("{code}: {other:?}"),
        }
    }
    graph.reply_to("15550000009", Reply { status: 502, body: "<html>Bad Gateway</html>".into() });
    let text = MessageContent::Text { body: "x".into(), preview_url: false };
    assert!(matches!(
        meta.send(&sender(), &secrets(), &outbound("+15550000009", text.clone())).await,
        Err(SendError::Unknown(_))
    ));
    // Nothing listens there: the request never left.
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    assert!(matches!(
        provider(url).send(&sender(), &secrets(), &outbound("+15550000009", text)).await,
        Err(SendError::Unreachable(_))
    ));
}

#[sqlx::test(migrator = "blazz_tests::MIGRATOR")]
async fn the_dispatcher_sends_queued_messages_once_and_records_the_outcome(pool: PgPool) {
    let graph = FakeGraph::start().await;
    let mut settings = Settings::new(4, Some(OPERATOR_TOKEN.into()));
    settings.edge.dispatch = true;
    settings.edge.meta.base_url = graph.url();
    let app = TestApp::spawn_with(pool, settings).await;
    let ws = app.workspace().await;
    let (channel, number) = app.channel_of(&ws, "meta").await;
    app.credentials(&ws, &channel).await;
    let ok = app.contact(&ws, "+6281234567890", json!({"first_name": "Budi"})).await;
    let stopped = app.contact(&ws, "+6281234567891", json!({"first_name": "Siti"})).await;
    graph.reply_to("6281234567891", Reply::error(131050));
    let template = app.template(&ws, "promo", "MARKETING", "APPROVED").await;
    let send = |contact: &str| json!({"channel_id": channel, "contact_id": contact, "type": "template", "template": {"id": template}});
    let sent = app.post("/v1/messages", &ws.key, send(&ok)).await.expect(202).id("message_id");
    let refused = app.post("/v1/messages", &ws.key, send(&stopped)).await.expect(202).id("message_id");

    let m = app.eventually(&ws, &format!("/v1/messages/{sent}"), |m| m["status"] == "sent").await;
    assert!(m["provider_message_id"].as_str().unwrap().starts_with("wamid.FAKE."));
    let f = app.eventually(&ws, &format!("/v1/messages/{refused}"), |m| m["status"] == "failed").await;
    assert_eq!(f["error"]["code"], 131050);
    app.eventually(&ws, &format!("/v1/contacts/{stopped}"), |c| c["opted_out"] == true).await;

    let calls = graph.calls();
    assert_eq!(calls.len(), 2, "one provider call per message");
    let call =
        calls.iter().find(|c| c.body["biz_opaque_callback_data"] == sent.as_str()).expect("call for the message");
    assert_eq!(call.path, format!("/v21.0/{number}/messages"));
    assert_eq!(call.authorization, format!("Bearer token-{channel}"));
    assert_eq!(call.body["template"]["name"], "promo");
    assert_eq!(call.body["template"]["components"][0]["parameters"][0]["text"], "Budi");
    assert_eq!(
        app.stream_types(&ws, &format!("message-{sent}")).await,
        vec!["message.queued", "message.dispatched", "message.sent"]
    );
}
