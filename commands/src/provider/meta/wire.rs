//! Request and response bodies of `POST /{version}/{phone_number_id}/messages`.

use crate::provider::Outbound;
use blazz_domain::message::{MediaKind, MediaRef, MessageContent, ProviderError};
use blazz_domain::template::{HeaderFormat, RenderedParameter};
use blazz_domain::values::Destination;
use serde::Deserialize;
use serde_json::{json, Map, Value};

/// The JSON body that sends `message`.
pub fn request_body(message: &Outbound) -> Value {
    let mut body = Map::new();
    body.insert("messaging_product".into(), json!("whatsapp"));
    body.insert("recipient_type".into(), json!("individual"));
    match &message.to {
        // Meta wants the number without the leading `+`.
        Destination::Phone(phone) => body.insert("to".into(), json!(phone.digits())),
        // A user known only by business-scoped user id: `recipient` instead of `to`.
        Destination::User(user) => body.insert("recipient".into(), json!(user.as_str())),
    };
    let (kind, payload) = content(&message.content);
    body.insert("type".into(), json!(kind));
    body.insert(kind.into(), payload);
    if let Some(reply_to) = &message.reply_to {
        body.insert("context".into(), json!({ "message_id": reply_to }));
    }
    body.insert("biz_opaque_callback_data".into(), json!(message.message_id.as_uuid().to_string()));
    Value::Object(body)
}

fn media_type(kind: MediaKind) -> &'static str {
    match kind {
        MediaKind::Image => "image",
        MediaKind::Video => "video",
        MediaKind::Audio => "audio",
        MediaKind::Document => "document",
        MediaKind::Sticker => "sticker",
    }
}

fn header_media_type(format: HeaderFormat) -> &'static str {
    match format {
        HeaderFormat::Image => "image",
        HeaderFormat::Video => "video",
        HeaderFormat::Document => "document",
        HeaderFormat::Text => "text",
    }
}

fn parameter(p: &RenderedParameter, in_button: bool) -> Value {
    match p {
        RenderedParameter::Text { name, text } => {
            let mut v = json!({ "type": "text", "text": text });
            if let (Some(n), false) = (name, in_button) {
                v["parameter_name"] = json!(n);
            }
            v
        }
        RenderedParameter::Media { format, link } => {
            let t = header_media_type(*format);
            json!({ "type": t, t: { "link": link } })
        }
    }
}

/// `(type, object)` of the content.
fn content(content: &MessageContent) -> (&'static str, Value) {
    match content {
        MessageContent::Text { body, preview_url } => ("text", json!({ "preview_url": preview_url, "body": body })),
        MessageContent::Template { name, language, rendered, .. } => {
            let components: Vec<Value> = rendered
                .components
                .iter()
                .filter(|c| !c.parameters.is_empty())
                .map(|c| {
                    let button = c.kind == "button";
                    let params: Vec<Value> = c.parameters.iter().map(|p| parameter(p, button)).collect();
                    if button {
                        // Only URL buttons take variables (the dynamic suffix of the link).
                        json!({ "type": "button", "sub_type": "url", "index": c.index.unwrap_or(0).to_string(), "parameters": params })
                    } else {
                        json!({ "type": c.kind, "parameters": params })
                    }
                })
                .collect();
            let mut t = json!({ "name": name.as_str(), "language": { "code": language.as_str() } });
            if !components.is_empty() {
                t["components"] = Value::Array(components);
            }
            ("template", t)
        }
        MessageContent::Media { media_kind, media, caption, filename } => {
            let mut m = match media {
                MediaRef::Id(id) => json!({ "id": id }),
                MediaRef::Link(link) => json!({ "link": link }),
                // The dispatcher uploads stored media and sends its provider id; never sent as such.
                MediaRef::Stored(id) => json!({ "id": id.to_string() }),
            };
            if let Some(c) = caption {
                m["caption"] = json!(c);
            }
            if let Some(f) = filename {
                m["filename"] = json!(f);
            }
            (media_type(*media_kind), m)
        }
        MessageContent::Interactive { body, buttons, header, footer } => {
            let buttons: Vec<Value> =
                buttons.iter().map(|b| json!({ "type": "reply", "reply": { "id": b.id, "title": b.title } })).collect();
            let mut i = json!({ "type": "button", "body": { "text": body }, "action": { "buttons": buttons } });
            if let Some(h) = header {
                i["header"] = json!({ "type": "text", "text": h });
            }
            if let Some(f) = footer {
                i["footer"] = json!({ "text": f });
            }
            ("interactive", i)
        }
    }
}

#[derive(Debug, Deserialize)]
struct Success {
    messages: Vec<SuccessMessage>,
}

#[derive(Debug, Deserialize)]
struct SuccessMessage {
    id: String,
}

#[derive(Debug, Deserialize)]
struct ErrorEnvelope {
    error: ErrorBody,
}

#[derive(Debug, Deserialize)]
struct ErrorBody {
    code: i64,
    #[serde(default)]
    message: String,
    #[serde(default)]
    error_data: Option<ErrorData>,
    #[serde(default)]
    fbtrace_id: Option<String>,
}

#[derive(Debug, Deserialize)]
struct ErrorData {
    #[serde(default)]
    details: Option<String>,
}

/// What an answer body says: the accepted message's id, or the provider's error. `None` when the body
/// is neither (then the outcome is unknown).
#[derive(Debug)]
pub enum Answer {
    Accepted(String),
    Rejected(ProviderError),
}

pub fn parse_answer(body: &[u8]) -> Option<Answer> {
    if let Ok(ok) = serde_json::from_slice::<Success>(body) {
        return ok.messages.into_iter().next().map(|m| Answer::Accepted(m.id));
    }
    let e = serde_json::from_slice::<ErrorEnvelope>(body).ok()?.error;
    let details = match (e.error_data.and_then(|d| d.details), e.fbtrace_id) {
        (Some(d), Some(t)) => Some(format!("{d} (fbtrace_id {t})")),
        (d, t) => d.or(t.map(|t| format!("fbtrace_id {t}"))),
    };
    Some(Answer::Rejected(ProviderError::new(e.code, e.message, details)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use blazz_domain::ids::{MessageId, TemplateId};
    use blazz_domain::message::ReplyButton;
    use blazz_domain::provider::ErrorClass;
    use blazz_domain::template::{Category, Language, RenderedComponent, RenderedTemplate, TemplateName};
    use blazz_domain::values::PhoneNumber;
    use uuid::Uuid;

    fn outbound(content: MessageContent) -> Outbound {
        Outbound {
            message_id: MessageId::from_uuid(Uuid::from_u128(7)),
            to: Destination::Phone(PhoneNumber::parse("+6281234567890").unwrap()),
            content,
            reply_to: Some("wamid.IN".into()),
        }
    }

    #[test]
    fn text_body_has_the_documented_shape() {
        let body = request_body(&outbound(MessageContent::Text { body: "Halo Budi".into(), preview_url: false }));
        assert_eq!(
            body,
            json!({"messaging_product":"whatsapp","recipient_type":"individual","to":"6281234567890",
                   "type":"text","text":{"preview_url":false,"body":"Halo Budi"},
                   "context":{"message_id":"wamid.IN"},
                   "biz_opaque_callback_data": Uuid::from_u128(7).to_string()})
        );
    }

    #[test]
    fn a_user_known_only_by_bsuid_is_addressed_in_recipient_instead_of_to() {
        let mut message = outbound(MessageContent::Text { body: "Halo".into(), preview_url: false });
        message.to = Destination::User(blazz_domain::values::Bsuid::parse("US.13491208655302741918").unwrap());
        let body = request_body(&message);
        assert_eq!((body["recipient"].as_str(), body.get("to")), (Some("US.13491208655302741918"), None));
    }

    #[test]
    fn template_components_carry_header_body_and_button_parameters() {
        let text = |t: &str| RenderedParameter::Text { name: None, text: t.into() };
        let content = MessageContent::Template {
            template_id: TemplateId::from_uuid(Uuid::from_u128(1)),
            name: TemplateName::parse("promo_oct").unwrap(),
            language: Language::parse("id").unwrap(),
            category: Category::Marketing,
            rendered: RenderedTemplate {
                components: vec![
                    RenderedComponent {
                        kind: "header".into(),
                        index: None,
                        parameters: vec![RenderedParameter::Media {
                            format: HeaderFormat::Image,
                            link: "https://cdn.example/p.jpg".into(),
                        }],
                    },
                    RenderedComponent {
                        kind: "body".into(),
                        index: None,
                        parameters: vec![text("Budi"), text("Rp50.000")],
                    },
                    RenderedComponent { kind: "button".into(), index: Some(1), parameters: vec![text("oct")] },
                ],
                body_preview: "".into(),
            },
        };
        let body = request_body(&outbound(content));
        assert_eq!(body["type"], "template");
        assert_eq!(body["template"]["name"], "promo_oct");
        assert_eq!(body["template"]["language"]["code"], "id");
        let c = &body["template"]["components"];
        assert_eq!(
            c[0],
            json!({"type":"header","parameters":[{"type":"image","image":{"link":"https://cdn.example/p.jpg"}}]})
        );
        assert_eq!(
            c[1],
            json!({"type":"body","parameters":[{"type":"text","text":"Budi"},{"type":"text","text":"Rp50.000"}]})
        );
        assert_eq!(
            c[2],
            json!({"type":"button","sub_type":"url","index":"1","parameters":[{"type":"text","text":"oct"}]})
        );
    }

    #[test]
    fn media_and_interactive_bodies() {
        let doc = MessageContent::Media {
            media_kind: MediaKind::Document,
            media: MediaRef::Link("https://x/inv.pdf".into()),
            caption: None,
            filename: Some("inv.pdf".into()),
        };
        let body = request_body(&outbound(doc));
        assert_eq!(body["document"], json!({"link":"https://x/inv.pdf","filename":"inv.pdf"}));
        let image = MessageContent::Media {
            media_kind: MediaKind::Image,
            media: MediaRef::Id("1037543291543636".into()),
            caption: Some("hi".into()),
            filename: None,
        };
        assert_eq!(request_body(&outbound(image))["image"], json!({"id":"1037543291543636","caption":"hi"}));
        let interactive = MessageContent::Interactive {
            body: "Pick".into(),
            buttons: vec![ReplyButton { id: "y".into(), title: "Yes".into() }],
            header: None,
            footer: Some("f".into()),
        };
        let body = request_body(&outbound(interactive));
        assert_eq!(body["interactive"]["type"], "button");
        assert_eq!(
            body["interactive"]["action"]["buttons"][0],
            json!({"type":"reply","reply":{"id":"y","title":"Yes"}})
        );
        assert_eq!(body["interactive"]["footer"]["text"], "f");
    }

    #[test]
    fn answers_are_parsed_and_errors_classified_by_code() {
        let ok = br#"{"messaging_product":"whatsapp","contacts":[{"input":"15551234567","wa_id":"15551234567"}],"messages":[{"id":"wamid.HBg="}]}"#;
        assert!(matches!(parse_answer(ok), Some(Answer::Accepted(id)) if id == "wamid.HBg="));
        let err = br#"{"error":{"message":"(#131056) pair rate limit hit","type":"OAuthException","code":131056,
                      "error_data":{"messaging_product":"whatsapp","details":"slow down"},"fbtrace_id":"A4O5"}}"#;
        let Some(Answer::Rejected(e)) = parse_answer(err) else { panic!("not an error") };
        assert_eq!((e.code, e.class()), (131056, ErrorClass::RetryLater));
        assert_eq!(e.details.as_deref(), Some("slow down (fbtrace_id A4O5)"));
        assert!(parse_answer(b"<html>bad gateway</html>").is_none());
    }
}
