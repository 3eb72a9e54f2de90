//! Tokens as an identity provider would sign them, with the test secret.

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use std::time::{SystemTime, UNIX_EPOCH};

/// The HS256 secret every test server is configured with.
pub const SECRET: &str = "integration-test-secret-of-at-least-32-bytes";

pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_secs()
}

/// An HS256 token for `sub` signed with the test secret, valid for an hour.
pub fn token(sub: &str, role: &str) -> String {
    sign(
        &json!({"sub": sub, "role": role, "exp": unix_now() + 3600}),
        SECRET.as_bytes(),
    )
}

/// The admin the helpers act as when a test's setup needs one.
pub const HELPER_ADMIN: &str = "helper-admin";

/// A token's claims, as the server will read them.
pub fn claims(token: &str) -> Value {
    use base64::Engine;
    let payload = token.split('.').nth(1).expect("a JWT");
    let json = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .expect("base64url");
    serde_json::from_slice(&json).expect("JSON claims")
}

pub fn user(sub: &str) -> String {
    token(sub, "user")
}

pub fn admin(sub: &str) -> String {
    token(sub, "admin")
}

/// An admin's token with a `name` claim, as an identity provider gives it.
pub fn named_admin(sub: &str, name: &str) -> String {
    sign(
        &json!({"sub": sub, "role": "admin", "name": name, "exp": unix_now() + 3600}),
        SECRET.as_bytes(),
    )
}

/// Signs any claims with HS256 and the given secret.
pub fn sign(claims: &Value, secret: &[u8]) -> String {
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(secret),
    )
    .expect("signing")
}
