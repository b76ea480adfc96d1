//! `X-Hub-Signature-256: sha256=<hex>`: HMAC-SHA256 keyed with the app secret over the raw request
//! bytes. Checked before the body is parsed, in constant time.

use hmac::{Hmac, Mac};
use sha2::Sha256;

pub const HEADER: &str = "x-hub-signature-256";

fn mac(app_secret: &str) -> Hmac<Sha256> {
    // HMAC accepts keys of any length.
    Hmac::<Sha256>::new_from_slice(app_secret.as_bytes()).expect("HMAC takes any key length")
}

/// The header value for `body`.
pub fn sign(app_secret: &str, body: &[u8]) -> String {
    let mut m = mac(app_secret);
    m.update(body);
    format!("sha256={}", hex::encode(m.finalize().into_bytes()))
}

/// Whether `header` is a valid signature of `body` (constant-time comparison of the digests).
pub fn verify(app_secret: &str, body: &[u8], header: &str) -> bool {
    let Some(digest) = header.trim().strip_prefix("sha256=").and_then(|h| hex::decode(h).ok()) else {
        return false;
    };
    let mut m = mac(app_secret);
    m.update(body);
    m.verify_slice(&digest).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_verifies_only_for_its_body_and_secret() {
        let body = br#"{"object":"whatsapp_business_account","entry":[]}"#;
        let header = sign("s3cret", body);
        assert!(header.starts_with("sha256=") && header.len() == 7 + 64);
        assert!(verify("s3cret", body, &header));
        assert!(!verify("other", body, &header));
        assert!(!verify("s3cret", b"{}", &header));
        assert!(!verify("s3cret", body, "sha256=zz"));
        assert!(!verify("s3cret", body, &header.replace("sha256=", "sha1=")));
    }
}
