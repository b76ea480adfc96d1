//! Inbound media over real sockets: the webhook names a media id, the fetcher gets the URL and the
//! bytes from the fake Graph API with the channel's token, checks Meta's SHA-256 and stores the bytes
//! in object storage: a directory, and a real S3-compatible server (`s3s-fs`).

use blazz_tests::automation::{setup_with, Setup};
use blazz_tests::s3::{S3Server, BUCKET};
use serde_json::{json, Value};
use sha2::Digest;
use sqlx::PgPool;
use std::sync::Arc;

const PHOTO: &[u8] = b"\xff\xd8\xff\xe0 not really a JPEG, but bytes all the same \xff\xd9";

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(sha2::Sha256::digest(bytes))
}

/// The workspace's only media record once `check` accepts it.
async fn media(s: &Setup, check: impl Fn(&Value) -> bool) -> Value {
    let page = s.app.eventually(&s.ws, "/v1/media", |p| p["items"][0].is_object() && check(&p["items"][0])).await;
    page["items"][0].clone()
}

async fn content(s: &Setup, id: &str, key: &str) -> reqwest::Response {
    reqwest::Client::new()
        .get(s.app.server.url(&format!("/v1/media/{id}/content")))
        .bearer_auth(key)
        .send()
        .await
        .unwrap()
}

/// An image comes in: fetched (again after a failed download), checked, stored, served with its type
/// to its workspace only.
async fn an_image_is_fetched_and_served(s: &Setup) -> String {
    s.graph.media("MEDIA-1", PHOTO, "image/jpeg", &sha256_hex(PHOTO));
    s.graph.fail_media_downloads(1);
    let part = json!({"id": "MEDIA-1", "mime_type": "image/jpeg", "sha256": sha256_hex(PHOTO), "caption": "foto"});
    s.inbound_of("6281234500020", "image", part).await;
    let m = media(s, |m| m["status"] == "stored").await;
    assert_eq!((m["kind"].as_str(), m["size"].as_u64()), (Some("image"), Some(PHOTO.len() as u64)), "{m}");
    assert_eq!(m["attempts"], 2, "the first download failed and was retried: {m}");
    assert_eq!(m["sha256"], sha256_hex(PHOTO));
    let id = m["media_id"].as_str().unwrap().to_owned();
    let got = content(s, &id, &s.ws.key).await;
    assert_eq!(got.status(), 200);
    assert_eq!(got.headers()["content-type"], "image/jpeg");
    assert_eq!(&got.bytes().await.unwrap()[..], PHOTO);
    let other = s.app.workspace().await;
    s.app.get(&format!("/v1/media/{id}"), &other.key).await.expect(404);
    assert_eq!(content(s, &id, &other.key).await.status(), 404);
    id
}

#[sqlx::test(migrator = "blazz_tests::MIGRATOR")]
async fn inbound_media_goes_to_a_directory_store(pool: PgPool) {
    let dir = std::env::temp_dir().join(format!("blazz-media-test-{}", uuid::Uuid::now_v7().simple()));
    let store = blazz_api::server::media_dir(&dir).unwrap();
    let s = setup_with(pool, |settings| settings.edge.media = store).await;
    let id = an_image_is_fetched_and_served(&s).await;
    let file = dir.join("media").join(&s.ws.id).join(&id);
    assert_eq!(std::fs::read(&file).unwrap(), PHOTO, "{}", file.display());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[sqlx::test(migrator = "blazz_tests::MIGRATOR")]
async fn inbound_media_goes_to_an_s3_compatible_store(pool: PgPool) {
    let s3 = S3Server::start().await;
    let store: Arc<dyn object_store::ObjectStore> = s3.store();
    let s = setup_with(pool, |settings| settings.edge.media = store).await;
    let id = an_image_is_fetched_and_served(&s).await;
    // s3s-fs keeps an object as a file under its bucket's directory.
    let file = s3.root.join(BUCKET).join("media").join(&s.ws.id).join(&id);
    assert_eq!(std::fs::read(&file).unwrap(), PHOTO, "{}", file.display());
}

#[sqlx::test(migrator = "blazz_tests::MIGRATOR")]
async fn media_whose_bytes_do_not_match_metas_hash_is_not_stored(pool: PgPool) {
    let s = setup_with(pool, |_| {}).await;
    s.graph.media("MEDIA-2", PHOTO, "application/pdf", &sha256_hex(b"other bytes"));
    let part = json!({"id": "MEDIA-2", "mime_type": "application/pdf", "sha256": sha256_hex(b"other bytes"),
                      "filename": "invoice.pdf"});
    s.inbound_of("6281234500021", "document", part).await;
    let m = media(&s, |m| m["last_error"].is_string()).await;
    assert!(m["last_error"].as_str().unwrap().contains("SHA-256"), "{m}");
    assert_eq!((m["status"].as_str(), m["filename"].as_str()), (Some("pending"), Some("invoice.pdf")), "retried: {m}");
    let got = content(&s, m["media_id"].as_str().unwrap(), &s.ws.key).await;
    assert_eq!(got.status(), 409);
    let body: Value = got.json().await.unwrap();
    assert_eq!(body["error"]["code"], "media_not_stored");
}

/// Uploads and sends by our id: the file is uploaded to the channel's provider once, and every send
/// on that channel goes by the id the upload got; bad uploads are refused with their reason.
#[sqlx::test(migrator = "blazz_tests::MIGRATOR")]
async fn our_media_is_uploaded_to_a_channel_once_and_sent_by_its_id(pool: PgPool) {
    let s = setup_with(pool, |_| {}).await;
    let post = |mime: &str, bytes: Vec<u8>| {
        let (url, key) = (s.app.server.url("/v1/media?filename=promo.png"), s.ws.key.clone());
        let mime = mime.to_owned();
        async move {
            reqwest::Client::new()
                .post(url)
                .bearer_auth(key)
                .header("content-type", mime)
                .body(bytes)
                .send()
                .await
                .unwrap()
        }
    };
    let stored = post("image/png", PHOTO.to_vec()).await;
    assert_eq!(stored.status(), 201);
    let stored: Value = stored.json().await.unwrap();
    assert_eq!((stored["kind"].as_str(), stored["status"].as_str()), (Some("image"), Some("stored")), "{stored}");
    assert_eq!(stored["sha256"], sha256_hex(PHOTO));
    let id = stored["media_id"].as_str().unwrap().to_owned();

    for (mime, bytes, status) in [
        ("application/x-msdownload", PHOTO.to_vec(), 415),
        ("image/webp", vec![0u8; 600 * 1024], 413),
        ("image/png", vec![], 400),
    ] {
        assert_eq!(post(mime, bytes).await.status(), status, "{mime}");
    }

    for to in ["+6281234500030", "+6281234500031"] {
        let contact = s.app.contact(&s.ws, to, json!({})).await;
        s.inbound(&to[1..], "Halo").await;
        let body = json!({"channel_id": s.channel, "contact_id": contact, "type": "image", "media": {"media_id": id, "caption": "Promo"}});
        s.app.post("/v1/messages", &s.ws.key, body).await.expect(202);
    }
    s.sent_to("6281234500031", 1).await;
    s.settled().await;
    let uploads = s.graph.uploads();
    assert_eq!(uploads.len(), 1, "one upload for the channel");
    assert!(uploads[0].0.ends_with(&format!("/{}/media", s.number)), "{}", uploads[0].0);
    assert!(uploads[0].2.windows(PHOTO.len()).any(|w| w == PHOTO), "the upload carries the file");
    let images: Vec<Value> =
        s.graph.calls().iter().filter(|c| c.body["type"] == "image").map(|c| c.body["image"].clone()).collect();
    assert_eq!(images, vec![json!({"id": "UPLOADED-1", "caption": "Promo"}); 2]);

    // Another workspace's media id, or one of another kind, is refused before anything is queued.
    let other = s.app.workspace().await;
    let contact = s.app.contact(&s.ws, "+6281234500032", json!({})).await;
    let send = |kind: &str, media: &str| json!({"channel_id": s.channel, "contact_id": contact, "type": kind, "media": {"media_id": media}});
    let refused = s.app.post("/v1/messages", &s.ws.key, send("video", &id)).await.expect(422);
    assert!(refused.body["error"]["message"].as_str().unwrap().contains("image"), "{}", refused.body);
    s.app.get(&format!("/v1/media/{id}"), &other.key).await.expect(404);
    s.app.post("/v1/messages", &s.ws.key, send("image", &uuid::Uuid::now_v7().to_string())).await.expect(422);
}
