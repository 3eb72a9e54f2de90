//! Who may call: every token attack is a 401 with a Bearer challenge, and
//! query or cookie tokens only work for reads.

use crate::support::{
    Backend, SECRET, TestApp, admin, assert_error, on_both_stores, send, sign, unix_now, user,
};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use figment::providers::Serialized;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::StatusCode;
use reqwest::header::{COOKIE, WWW_AUTHENTICATE};
use serde_json::json;

const RSA_PRIVATE: &[u8] = include_bytes!("fixtures/rsa_private.pem");
const RSA_PUBLIC: &[u8] = include_bytes!("fixtures/rsa_public.pem");

on_both_stores!(
    a_request_without_a_token_gets_401_with_a_bearer_challenge,
    forged_expired_and_malformed_tokens_are_all_refused,
    issuer_and_audience_are_enforced_when_configured,
    an_audience_list_passes_when_any_of_it_is_ours,
    a_token_issued_in_the_future_is_refused_and_its_lifetime_counts_from_now,
    a_configured_public_key_accepts_its_algorithm_but_not_algorithm_confusion,
    with_only_a_public_key_no_hs256_token_passes_even_one_keyed_with_the_keys_pem,
    a_token_naming_critical_header_parameters_is_refused,
    query_and_cookie_tokens_work_for_reads_but_not_for_writes,
);

/// Tokens must come from `https://auth.example`, for `chat`.
fn with_issuer_and_audience(figment: figment::Figment) -> figment::Figment {
    figment
        .merge(Serialized::default("jwt_issuer", "https://auth.example"))
        .merge(Serialized::default("jwt_audience", "chat"))
}

async fn a_request_without_a_token_gets_401_with_a_bearer_challenge(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let response = app
        .http
        .get(app.url("/api/chat/rooms"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(response.headers()[WWW_AUTHENTICATE], "Bearer");
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "unauthorized");

    let response = app
        .http
        .get(app.url("/api/chat/rooms"))
        .bearer_auth("garbage")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        response.headers()[WWW_AUTHENTICATE],
        r#"Bearer error="invalid_token""#
    );
}

async fn forged_expired_and_malformed_tokens_are_all_refused(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let now = unix_now();
    let claims = |extra: serde_json::Value| {
        let mut claims = json!({"sub": "mallory", "role": "admin", "exp": now + 3600});
        claims
            .as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        claims
    };
    let unsigned = {
        let header = URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT"}"#);
        let payload = URL_SAFE_NO_PAD.encode(claims(json!({})).to_string());
        format!("{header}.{payload}.")
    };
    let attacks = [
        ("alg none", unsigned),
        (
            "wrong secret",
            sign(
                &claims(json!({})),
                b"not-the-server-secret-not-the-server-secret",
            ),
        ),
        (
            "expired",
            sign(&claims(json!({"exp": now - 60})), SECRET.as_bytes()),
        ),
        (
            "not yet valid",
            sign(&claims(json!({"nbf": now + 600})), SECRET.as_bytes()),
        ),
        (
            "no exp",
            sign(&json!({"sub": "mallory"}), SECRET.as_bytes()),
        ),
        (
            "no sub",
            sign(&json!({"exp": now + 3600}), SECRET.as_bytes()),
        ),
        (
            "unknown role",
            sign(&claims(json!({"role": "superuser"})), SECRET.as_bytes()),
        ),
        (
            "10 KB",
            format!("{}.{}.x", "a".repeat(5000), "b".repeat(5000)),
        ),
        ("not base64", "%%%.@@@.!!!".to_owned()),
        ("one segment", "justgarbage".to_owned()),
        ("tampered payload", {
            let good = admin("alice");
            let mut parts: Vec<String> = good.split('.').map(str::to_owned).collect();
            parts[1] = URL_SAFE_NO_PAD.encode(claims(json!({"sub": "root"})).to_string());
            parts.join(".")
        }),
    ];
    for (attack, token) in attacks {
        let (status, body) = app.get("/api/chat/rooms", &token).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{attack}: {body}");
        assert_eq!(body["error"]["code"], "invalid_token", "{attack}");
        // A stream is refused the same way, in the header or the query, and
        // gets a JSON error, not one byte of a stream.
        let by_header = app.http.get(app.url("/api/chat/sse")).bearer_auth(&token);
        let encoded: String = form_urlencoded::byte_serialize(token.as_bytes()).collect();
        let by_query = app
            .http
            .get(app.url(&format!("/api/chat/sse?access_token={encoded}")));
        for request in [by_header, by_query] {
            let response = request.send().await.unwrap();
            assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{attack}");
            assert_eq!(response.headers()["content-type"], "application/json");
            let body = response.text().await.unwrap();
            assert!(!body.contains("data:"), "{attack}: {body}");
        }
    }
    // Expiry within the configured leeway (5 s) is still accepted.
    let just_expired = sign(&claims(json!({"exp": now - 2})), SECRET.as_bytes());
    assert_eq!(
        app.get("/api/chat/rooms", &just_expired).await.0,
        StatusCode::OK
    );
}

async fn issuer_and_audience_are_enforced_when_configured(backend: Backend) {
    let app = TestApp::spawn_with(backend, with_issuer_and_audience).await;
    let exp = unix_now() + 3600;
    let good = json!({"sub": "alice", "exp": exp, "iss": "https://auth.example", "aud": "chat"});
    assert_eq!(
        app.get("/api/chat/rooms", &sign(&good, SECRET.as_bytes()))
            .await
            .0,
        StatusCode::OK
    );
    for claims in [
        json!({"sub": "alice", "exp": exp, "iss": "https://evil.example", "aud": "chat"}),
        json!({"sub": "alice", "exp": exp, "iss": "https://auth.example", "aud": "other"}),
        json!({"sub": "alice", "exp": exp, "aud": "chat"}),
        json!({"sub": "alice", "exp": exp, "iss": "https://auth.example"}),
    ] {
        let (status, body) = app
            .get("/api/chat/rooms", &sign(&claims, SECRET.as_bytes()))
            .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{claims}: {body}");
    }
}

async fn an_audience_list_passes_when_any_of_it_is_ours(backend: Backend) {
    let app = TestApp::spawn_with(backend, with_issuer_and_audience).await;
    let claims = |aud: serde_json::Value| {
        let claims = json!({"sub": "alice", "exp": unix_now() + 3600,
            "iss": "https://auth.example", "aud": aud});
        sign(&claims, SECRET.as_bytes())
    };
    for ours in [json!(["chat"]), json!(["billing", "chat"]), json!("chat")] {
        let (status, body) = app.get("/api/chat/rooms", &claims(ours.clone())).await;
        assert_eq!(status, StatusCode::OK, "{ours}: {body}");
    }
    for theirs in [
        json!(["billing", "crm"]),
        json!([]),
        json!("billing"),
        json!(7),
    ] {
        let (status, body) = app.get("/api/chat/rooms", &claims(theirs.clone())).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{theirs}: {body}");
        assert_eq!(body["error"]["code"], "invalid_token", "{theirs}");
        if theirs.is_array() || theirs.is_string() {
            assert_eq!(
                body["error"]["message"], "the token's audience is not accepted",
                "{theirs}"
            );
        }
    }
}

async fn a_token_issued_in_the_future_is_refused_and_its_lifetime_counts_from_now(
    backend: Backend,
) {
    // A leeway of 60 s (so that the clock ticking during the test cannot
    // decide a case), tokens living at most 24 h (the default).
    let app = TestApp::spawn_with(backend, |figment| {
        figment.merge(Serialized::default("jwt_leeway", "60s"))
    })
    .await;
    let now = unix_now();
    let token = |iat: u64, exp: u64| {
        sign(
            &json!({"sub": "alice", "iat": iat, "exp": exp}),
            SECRET.as_bytes(),
        )
    };
    let day = 24 * 3600;
    let (status, body) = app
        .get("/api/chat/rooms", &token(now + 3600, now + 7200))
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(
        body["error"]["message"],
        "the token was issued in the future"
    );
    // Within the leeway, a clock a little ahead is forgiven.
    let (status, body) = app.get("/api/chat/rooms", &token(now + 30, now + 90)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // Its lifetime counts from now: an `iat` just ahead cannot stretch a
    // token past the maximum. Counted from its `iat` this one lives 24 h and
    // 50 s (within the maximum and its leeway); counted from now, 24 h and
    // 80 s, 20 s too long.
    let (status, body) = app
        .get("/api/chat/rooms", &token(now + 30, now + day + 80))
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(
        body["error"]["message"],
        "the token's lifetime exceeds the accepted maximum"
    );
    let (status, body) = app.get("/api/chat/rooms", &token(now, now + day)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

async fn a_configured_public_key_accepts_its_algorithm_but_not_algorithm_confusion(
    backend: Backend,
) {
    let key_dir = tempfile::tempdir().unwrap();
    let key_file = key_dir.path().join("public.pem");
    std::fs::write(&key_file, RSA_PUBLIC).unwrap();
    let app = TestApp::spawn_with(backend, |figment| {
        figment
            .merge(Serialized::default("jwt_public_key_file", &key_file))
            .merge(Serialized::default("jwt_public_key_algorithm", "RS256"))
    })
    .await;
    let claims = json!({"sub": "alice", "role": "admin", "exp": unix_now() + 3600});

    let rs256 = jsonwebtoken::encode(
        &Header::new(Algorithm::RS256),
        &claims,
        &EncodingKey::from_rsa_pem(RSA_PRIVATE).unwrap(),
    )
    .unwrap();
    assert_eq!(app.get("/api/chat/rooms", &rs256).await.0, StatusCode::OK);

    // HS256 "signed" with the public key, hoping the server verifies with it.
    let confused = sign(&claims, RSA_PUBLIC);
    assert_error(
        app.get("/api/chat/rooms", &confused).await,
        StatusCode::UNAUTHORIZED,
        "invalid_token",
    );
    // The shared secret keeps working beside the key pair.
    assert_eq!(
        app.get("/api/chat/rooms", &user("bob")).await.0,
        StatusCode::OK
    );
}

/// An explicit secret is what lets HS256 in beside a key pair: without one,
/// no HMAC-signed token passes, whatever its key (the PEM itself, the
/// generated development secret of a server that never needed one).
async fn with_only_a_public_key_no_hs256_token_passes_even_one_keyed_with_the_keys_pem(
    backend: Backend,
) {
    let key_dir = tempfile::tempdir().unwrap();
    let key_file = key_dir.path().join("public.pem");
    std::fs::write(&key_file, RSA_PUBLIC).unwrap();
    let app = TestApp::spawn_with(backend, |figment| {
        figment
            .merge(Serialized::default("jwt_secret", ""))
            .merge(Serialized::default("jwt_public_key_file", &key_file))
            .merge(Serialized::default("jwt_public_key_algorithm", "RS256"))
    })
    .await;
    let claims = json!({"sub": "alice", "role": "admin", "exp": unix_now() + 3600});
    let rs256 = jsonwebtoken::encode(
        &Header::new(Algorithm::RS256),
        &claims,
        &EncodingKey::from_rsa_pem(RSA_PRIVATE).unwrap(),
    )
    .unwrap();
    assert_eq!(app.get("/api/chat/rooms", &rs256).await.0, StatusCode::OK);
    for (attempt, key) in [
        ("the public key's PEM", RSA_PUBLIC),
        ("the PEM, trimmed", RSA_PUBLIC.trim_ascii()),
        ("a secret the server never set", SECRET.as_bytes()),
    ] {
        let (status, body) = app.get("/api/chat/rooms", &sign(&claims, key)).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{attempt}: {body}");
        assert_eq!(body["error"]["code"], "invalid_token", "{attempt}");
    }
    // Nor does the development endpoint sign anything with a secret of its own.
    let minted = send(
        app.http
            .post(app.url("/api/dev/token"))
            .json(&json!({"sub": "agent", "role": "admin"})),
    )
    .await;
    assert_error(minted, StatusCode::CONFLICT, "no_signing_secret");
}

/// RFC 7515 § 4.1.11: a token whose header marks an extension critical must
/// be refused by a recipient that does not implement it (we implement none).
async fn a_token_naming_critical_header_parameters_is_refused(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let claims = json!({"sub": "mallory", "role": "admin", "exp": unix_now() + 3600});
    let key = EncodingKey::from_secret(SECRET.as_bytes());
    let mut critical = Header::new(Algorithm::HS256);
    critical.crit = Some(vec!["https://example.com/must-understand".to_owned()]);
    critical
        .extras
        .insert("https://example.com/must-understand", true);
    let token = jsonwebtoken::encode(&critical, &claims, &key).unwrap();
    let (status, body) = app.get("/api/chat/rooms", &token).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(body["error"]["code"], "invalid_token");
    // The same token without `crit` is fine: the refusal is for `crit` alone.
    let mut plain = critical.clone();
    plain.crit = None;
    let token = jsonwebtoken::encode(&plain, &claims, &key).unwrap();
    assert_eq!(app.get("/api/chat/rooms", &token).await.0, StatusCode::OK);
}

async fn query_and_cookie_tokens_work_for_reads_but_not_for_writes(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let token = user("alice");
    let rooms = app.url("/api/chat/rooms");

    let by_query = send(app.http.get(format!("{rooms}?access_token={token}"))).await;
    assert_eq!(by_query.0, StatusCode::OK, "{}", by_query.1);
    let by_cookie = send(
        app.http
            .get(&rooms)
            .header(COOKIE, format!("theme=dark; chat_token={token}")),
    )
    .await;
    assert_eq!(by_cookie.0, StatusCode::OK, "{}", by_cookie.1);

    let body = json!({"name": "cross-site"});
    let write_by_query = send(
        app.http
            .post(format!("{rooms}?access_token={token}"))
            .json(&body),
    )
    .await;
    assert_error(write_by_query, StatusCode::UNAUTHORIZED, "unauthorized");
    let write_by_cookie = send(
        app.http
            .post(&rooms)
            .header(COOKIE, format!("chat_token={token}"))
            .json(&body),
    )
    .await;
    assert_error(write_by_cookie, StatusCode::UNAUTHORIZED, "unauthorized");
    // Nothing was created by the refused writes.
    let (_, list) = app.get("/api/chat/rooms", &token).await;
    assert_eq!(list["rooms"], json!([]));
}
