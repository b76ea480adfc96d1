//! Bulk contact import over HTTP: JSON and CSV, bad rows reported by line, the rest imported,
//! 100,000 rows in one request, and the CLI importer (chunks, progress, the file's line numbers).

use blazz_tests::TestApp;
use serde_json::{json, Value};
use sqlx::PgPool;
use uuid::Uuid;

async fn import(app: &TestApp, key: &str, content_type: &str, body: String) -> (u16, Value) {
    let res = app
        .client
        .post(app.server.url("/v1/contacts/import"))
        .bearer_auth(key)
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .expect("send");
    (res.status().as_u16(), res.json().await.expect("json"))
}

/// An import answer's row errors as (line, code).
fn row_errors(body: &Value) -> Vec<(u64, &str)> {
    body["errors"]
        .as_array()
        .expect("errors")
        .iter()
        .map(|e| (e["line"].as_u64().unwrap_or(0), e["code"].as_str().unwrap_or("")))
        .collect()
}

async fn contacts_in(app: &TestApp, ws: &str) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM events WHERE workspace_id = $1 AND event_type = 'contact.created'")
        .bind(Uuid::parse_str(ws).expect("uuid"))
        .fetch_one(&app.pool)
        .await
        .expect("count")
}

#[sqlx::test(migrator = "blazz_tests::MIGRATOR")]
async fn csv_rows_with_errors_are_reported_by_line_and_the_rest_imported(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let ws = app.workspace().await;
    app.contact(&ws, "+6281299999999", json!({})).await;
    let csv = "phone,name,city\n\
               +6281200000001,Budi,Bandung\n\
               0812345,Bad Number,Jakarta\n\
               +62 812-0000-0002,Siti,\n\
               +6281200000001,Dup In File,Solo\n\
               +6281299999999,Already There,Medan\n\
               \"+6281200000003\",\"Quoted, Name\",Bogor\n";
    let (status, body) = import(&app, &ws.key, "text/csv", csv.into()).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["imported"], 3);
    assert_eq!(body["failed"], 3);
    let errors = row_errors(&body);
    assert_eq!(errors, [(3, "validation_failed"), (5, "duplicate_in_import"), (6, "phone_taken")]);
    assert_eq!(contacts_in(&app, &ws.id).await, 4);
    let history = app.history(&ws).await;
    let quoted = history.iter().find(|e| e["payload"]["name"] == "Quoted, Name").expect("quoted row imported");
    assert_eq!(quoted["payload"]["attributes"]["city"], "Bogor");
    assert_eq!(quoted["payload"]["phone"], "+6281200000003");

    let (status, body) = import(&app, &ws.key, "text/csv", "name,city\nBudi,Bandung\n".into()).await;
    assert_eq!((status, body["error"]["code"].as_str()), (400, Some("invalid_csv")));
    let (status, body) = import(&app, &ws.key, "application/xml", "<x/>".into()).await;
    assert_eq!((status, body["error"]["code"].as_str()), (415, Some("unsupported_media_type")));
}

#[sqlx::test(migrator = "blazz_tests::MIGRATOR")]
async fn json_rows_with_errors_are_reported_by_position(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let ws = app.workspace().await;
    let body = json!([
        {"phone": "+6281200000001", "name": "Budi", "attributes": {"tier": 1}},
        {"phone": 6281200000002_u64},
        "not an object",
        {"phone": "+6281200000004", "attributes": {"bad key!": 1}},
        {"phone": "+6281200000005", "colour": "red"},
        {"phone": "+6281200000006"}
    ]);
    let (status, body) = import(&app, &ws.key, "application/json", body.to_string()).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!((body["imported"].as_u64(), body["failed"].as_u64()), (Some(2), Some(4)));
    let lines: Vec<u64> =
        body["errors"].as_array().expect("errors").iter().map(|e| e["line"].as_u64().unwrap_or(0)).collect();
    assert_eq!(lines, [2, 3, 4, 5]);
    let (status, body) = import(&app, &ws.key, "application/json", "{\"phone\": 1}".into()).await;
    assert_eq!((status, body["error"]["code"].as_str()), (400, Some("invalid_json")));
}

#[sqlx::test(migrator = "blazz_tests::MIGRATOR")]
async fn one_hundred_thousand_rows_in_one_request(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let ws = app.workspace().await;
    let mut csv = String::from("phone,name,segment\n");
    for i in 0..100_000u64 {
        csv.push_str(&format!("+62813{i:08},Contact {i},s{}\n", i % 7));
    }
    // Two bad rows among them, at known lines.
    csv.push_str("12,Too Short,s1\n+6281300000007,Duplicate,s1\n");
    let (status, body) = import(&app, &ws.key, "text/csv", csv).await;
    assert_eq!(status, 200, "{}", body["error"]);
    assert_eq!(body["imported"], 100_000);
    let lines: Vec<u64> =
        body["errors"].as_array().expect("errors").iter().map(|e| e["line"].as_u64().unwrap_or(0)).collect();
    assert_eq!(lines, [100_002, 100_003]);
    assert_eq!(contacts_in(&app, &ws.id).await, 100_000);
    let claims: i64 = sqlx::query_scalar("SELECT count(*) FROM unique_claims WHERE scope = 'contact_phone'")
        .fetch_one(&app.pool)
        .await
        .expect("count");
    assert_eq!(claims, 100_000);
}

/// Opens a connection and sends an import's head and the start of its body; the rest never comes.
async fn unfinished_import(app: &TestApp, key: &str, content_type: &str, length: usize, start: &[u8]) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut socket = tokio::net::TcpStream::connect(app.server.addr).await.expect("connect");
    let head = format!(
        "POST /v1/contacts/import HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {key}\r\ncontent-type: {content_type}\r\ncontent-length: {length}\r\n\r\n"
    );
    socket.write_all(head.as_bytes()).await.expect("write head");
    socket.write_all(start).await.expect("write body");
    // The answer must come while the body is unfinished: a server that waited for the whole body would
    // hold the socket until the import timeout (300 s), far past this read's limit.
    let mut answer = Vec::new();
    let mut buf = vec![0u8; 8192];
    let read = async {
        while !String::from_utf8_lossy(&answer).contains("\"error\"") {
            let n = socket.read(&mut buf).await.expect("read");
            assert!(n > 0, "closed without an answer: {}", String::from_utf8_lossy(&answer));
            answer.extend_from_slice(&buf[..n]);
        }
    };
    tokio::time::timeout(std::time::Duration::from_secs(60), read).await.expect("answered before the body ended");
    String::from_utf8_lossy(&answer).into_owned()
}

/// The import reads its body as a stream: past the row limit it answers 413 at once, without reading
/// (or holding) the rest, and imports nothing.
#[sqlx::test(migrator = "blazz_tests::MIGRATOR")]
async fn an_import_past_the_row_limit_is_refused_before_its_body_ends(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let ws = app.workspace().await;
    let limit = blazz_commands::handlers::import::MAX_IMPORT_ROWS;
    // The reported attack: an array of zeros, 60 MiB announced.
    let mut zeros = b"[".to_vec();
    zeros.extend(std::iter::repeat_n(b"0,".as_slice(), limit + 1).flatten());
    let answer = unfinished_import(&app, &ws.key, "application/json", 60 << 20, &zeros).await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("too_many_rows"), "{answer}");
    let mut csv = b"phone\n".to_vec();
    csv.extend(std::iter::repeat_n(b"1\n".as_slice(), limit + 1).flatten());
    let answer = unfinished_import(&app, &ws.key, "text/csv", 60 << 20, &csv).await;
    assert!(answer.starts_with("HTTP/1.1 413") && answer.contains("too_many_rows"), "{answer}");
    // A body announced over the limit is refused from its head.
    let answer = unfinished_import(&app, &ws.key, "text/csv", 65 << 20, b"phone\n").await;
    assert!(answer.starts_with("HTTP/1.1 413") && answer.contains("payload_too_large"), "{answer}");
    // One row over 1 MiB stops the import at that row.
    let mut huge = br#"[{"phone":"+6281200000001"},{"phone":"+6281200000002","name":""#.to_vec();
    huge.extend(std::iter::repeat_n(b'x', (1 << 20) + (16 << 10)));
    let answer = unfinished_import(&app, &ws.key, "application/json", 60 << 20, &huge).await;
    assert!(answer.starts_with("HTTP/1.1 413") && answer.contains("row_too_large"), "{answer}");
    assert!(answer.contains("row 2 "), "{answer}");
    assert_eq!(contacts_in(&app, &ws.id).await, 0);
}

/// What a hostile row nests is skipped, not kept: compound values where scalars belong are row errors,
/// and the other rows import.
#[sqlx::test(migrator = "blazz_tests::MIGRATOR")]
async fn nested_values_in_json_rows_are_row_errors(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let ws = app.workspace().await;
    let deep = (0..100).fold(json!(0), |v, _| json!([v]));
    let many: serde_json::Map<String, Value> = (0..500).map(|i| (format!("k{i}"), json!(i))).collect();
    let body = json!([
        {"phone": {"nested": deep}},
        {"phone": "+6281200000002", "name": [1, 2, 3]},
        {"phone": "+6281200000003", "attributes": {"tier": {"gold": true}}},
        {"phone": "+6281200000004", "attributes": many},
        {"phone": "+6281200000005", "attributes": {"tier": 1}, "name": "Ok"}
    ]);
    let (status, body) = import(&app, &ws.key, "application/json", body.to_string()).await;
    assert_eq!(status, 200, "{body}");
    let errors = row_errors(&body);
    assert_eq!(
        errors,
        [(1, "invalid_row"), (2, "invalid_row"), (3, "validation_failed"), (4, "validation_failed")],
        "{body}"
    );
    assert_eq!(body["imported"], 1);
}

/// A `Write` whose bytes a test reads afterwards.
#[derive(Clone, Default)]
struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[sqlx::test(migrator = "blazz_tests::MIGRATOR")]
async fn the_cli_imports_a_file_in_chunks_with_progress_and_the_files_own_line_numbers(pool: PgPool) {
    use blazz_api::cli::{import, progress::JobProgress};
    let app = TestApp::spawn(pool).await;
    let ws = app.workspace().await;
    // 12 rows, a quoted name over two lines in row 3, bad phones on rows 5 and 11; chunks of 4.
    let mut csv = String::from("phone,name,city\n");
    for i in 1..=12 {
        let phone = if i == 5 || i == 11 { "not-a-phone".to_owned() } else { format!("+62812000000{i:02}") };
        let name = if i == 3 { "\"Budi\nSantoso\"".to_owned() } else { format!("Contact {i}") };
        csv.push_str(&format!("{phone},{name},Bandung\n"));
    }
    let dir = std::env::temp_dir().join(format!("blazz-import-{}", Uuid::now_v7()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("contacts.csv");
    std::fs::write(&file, &csv).unwrap();
    let out = Captured::default();
    let mut progress = JobProgress::lines(Box::new(out.clone()), "contacts", "rows", 0);
    let url = app.server.url("");
    let summary = import::contacts(&app.client, &url, &ws.key, &file, 4, &mut progress).await.unwrap();

    assert_eq!((summary.rows, summary.imported, summary.failed), (12, 10, 2), "{summary:?}");
    // File lines: header 1, rows 2..; row 3 takes lines 4 and 5, so row 5 is line 7 and row 11 line 13.
    let lines: Vec<&Value> = summary.errors.iter().map(|e| &e["line"]).collect();
    assert_eq!(lines, [&json!(7), &json!(13)], "{:?}", summary.errors);
    let listed = app.eventually(&ws, "/v1/contacts?limit=100", |l| l["items"].as_array().unwrap().len() == 10).await;
    let names: Vec<&str> = listed["items"].as_array().unwrap().iter().filter_map(|c| c["name"].as_str()).collect();
    assert!(names.contains(&"Budi\nSantoso"), "{names:?}");
    let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
    assert!(text.lines().next().is_some_and(|l| l.starts_with("contacts: 0/12 rows (0%)")), "{text}");
    let last = text.lines().last().unwrap_or_default();
    assert!(last.starts_with("contacts: 12/12 rows (100%), ") && last.contains("rows/s, ETA 0 s"), "{text}");

    // Again: nothing new, every row reported (the phones are taken), never a second contact.
    let mut quiet = JobProgress::lines(Box::new(std::io::sink()), "contacts", "rows", 0);
    let again = import::contacts(&app.client, &url, &ws.key, &file, 4, &mut quiet).await.unwrap();
    assert_eq!((again.imported, again.failed), (0, 12), "{again:?}");
    assert_eq!(
        app.get("/v1/contacts?limit=100", &ws.key).await.expect(200).body["items"].as_array().unwrap().len(),
        10
    );
    // A file the importer cannot read is refused before anything is sent.
    let other = dir.join("contacts.txt");
    std::fs::write(&other, "x").unwrap();
    assert!(import::contacts(&app.client, &url, &ws.key, &other, 4, &mut quiet).await.is_err());
    std::fs::remove_dir_all(&dir).ok();
}
