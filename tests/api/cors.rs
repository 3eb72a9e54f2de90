//! CORS: pages on a configured origin may call the API and open streams, with
//! credentials; other origins get no grant; by default (outside development)
//! no origin does. Every answer carries `nosniff`; pages also a referrer policy.

use crate::support::{Backend, TestApp, on_both_stores, send, user};
use figment::providers::Serialized;
use reqwest::{Method, StatusCode};

on_both_stores!(
    a_configured_origin_gets_preflight_and_credentialed_answers_and_others_get_nothing,
    without_configured_origins_no_origin_is_granted,
    every_answer_says_nosniff_and_pages_send_no_referrer,
    a_cookie_or_query_token_from_another_site_is_refused_before_it_takes_a_slot_or_shows_anyone,
);

const ALLOWED: &str = "https://app.example.com";

async fn a_configured_origin_gets_preflight_and_credentialed_answers_and_others_get_nothing(
    backend: Backend,
) {
    let app = TestApp::spawn_with(backend, |figment| {
        figment.merge(Serialized::default("cors_allowed_origins", [ALLOWED]))
    })
    .await;
    let preflight = |origin: &str, method: &str, headers: &str| {
        app.http
            .request(Method::OPTIONS, app.url("/api/chat/rooms"))
            .header("origin", origin)
            .header("access-control-request-method", method)
            .header("access-control-request-headers", headers)
            .send()
    };
    let granted = preflight(ALLOWED, "POST", "authorization,content-type")
        .await
        .unwrap();
    assert_eq!(granted.status(), StatusCode::OK);
    let headers = granted.headers();
    assert_eq!(headers["access-control-allow-origin"], ALLOWED);
    assert_eq!(headers["access-control-allow-credentials"], "true");
    let methods = headers["access-control-allow-methods"].to_str().unwrap();
    assert!(
        methods.contains("POST") && methods.contains("DELETE"),
        "{methods}"
    );
    let allowed_headers = headers["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .to_ascii_lowercase();
    for needed in [
        "authorization",
        "content-type",
        "last-event-id",
        "if-none-match",
    ] {
        assert!(
            allowed_headers.contains(needed),
            "{needed} in {allowed_headers}"
        );
    }
    assert!(headers.contains_key("access-control-max-age"));

    let stranger = preflight("https://evil.example", "POST", "authorization")
        .await
        .unwrap();
    assert!(
        !stranger
            .headers()
            .contains_key("access-control-allow-origin")
    );

    // The actual request: the grant names the origin, and `ETag` is readable.
    let listing = app
        .http
        .get(app.url("/api/chat/rooms"))
        .bearer_auth(user("ann"))
        .header("origin", ALLOWED)
        .send()
        .await
        .unwrap();
    assert_eq!(listing.status(), StatusCode::OK);
    assert_eq!(listing.headers()["access-control-allow-origin"], ALLOWED);
    assert_eq!(
        listing.headers()["access-control-allow-credentials"],
        "true"
    );
    let exposed = listing.headers()["access-control-expose-headers"]
        .to_str()
        .unwrap()
        .to_ascii_lowercase();
    assert!(
        exposed.contains("etag") && exposed.contains("retry-after"),
        "{exposed}"
    );
    let vary = listing.headers()["vary"]
        .to_str()
        .unwrap()
        .to_ascii_lowercase();
    assert!(vary.contains("origin"), "{vary}");

    // A stream opened from the page's origin is granted too.
    let stream = app
        .http
        .get(app.url("/api/chat/sse"))
        .bearer_auth(user("ann"))
        .header("origin", ALLOWED)
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), StatusCode::OK);
    assert_eq!(stream.headers()["access-control-allow-origin"], ALLOWED);
}

async fn without_configured_origins_no_origin_is_granted(backend: Backend) {
    let app = TestApp::spawn_with(backend, |figment| figment).await;
    let response = app
        .http
        .get(app.url("/api/chat/rooms"))
        .bearer_auth(user("ann"))
        .header("origin", ALLOWED)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        !response
            .headers()
            .contains_key("access-control-allow-origin")
    );
}

async fn every_answer_says_nosniff_and_pages_send_no_referrer(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    for path in ["/api/chat/rooms", "/healthz", "/no/such/route", "/admin"] {
        let response = app
            .http
            .get(app.url(path))
            .bearer_auth(user("ann"))
            .send()
            .await
            .unwrap();
        assert_eq!(
            response.headers()["x-content-type-options"],
            "nosniff",
            "{path}"
        );
    }
    for page in ["/admin", "/widget"] {
        let response = app.http.get(app.url(page)).send().await.unwrap();
        assert_eq!(
            response.headers()["referrer-policy"],
            "no-referrer",
            "{page}"
        );
    }
}

/// The hostile review's probe: 16 cookie-only stream opens carrying
/// `Origin: https://evil.example` took all 16 of a user's stream slots (their
/// own poll then got 429) and showed them online.
async fn a_cookie_or_query_token_from_another_site_is_refused_before_it_takes_a_slot_or_shows_anyone(
    backend: Backend,
) {
    let app = TestApp::spawn_with(backend, |figment| {
        figment
            .merge(Serialized::default("cors_allowed_origins", [ALLOWED]))
            .merge(Serialized::default("stream_rate_per_user", 1000))
            .merge(Serialized::default("stream_burst_per_user", 1000))
    })
    .await;
    let (alice, bob) = (user("alice"), user("bob"));
    let room = app.create_room(&bob, "pair", &["alice"]).await;
    let evil = "https://evil.example";
    let cookie = format!("chat_token={alice}");
    let with = |path: &str, headers: &[(&'static str, &str)]| {
        let mut request = app.http.get(app.url(path));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        request
    };
    // As many as the user's streams may be, and more, by cookie and by query.
    let query = format!("/api/chat/sse?access_token={alice}");
    for _ in 0..20 {
        for request in [
            with("/api/chat/sse", &[("origin", evil), ("cookie", &cookie)]),
            with(&query, &[("origin", evil)]),
            // An `<img>` or a link sends no Origin, but says it is cross-site.
            with(
                "/api/chat/sse",
                &[("sec-fetch-site", "cross-site"), ("cookie", &cookie)],
            ),
            with(
                "/api/chat/events?wait=0",
                &[("origin", evil), ("cookie", &cookie)],
            ),
            with("/api/chat/rooms", &[("origin", evil), ("cookie", &cookie)]),
        ] {
            let (status, body) = send(request).await;
            assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
            assert_eq!(body["error"]["code"], "cross_site_request");
        }
    }
    // None of that took a slot or made alice online to her room mate.
    let (_, presence) = app.get("/api/chat/presence?userIds=alice", &bob).await;
    assert_eq!(presence["users"][0]["online"], false, "{presence}");
    let (status, _) = send(with("/api/chat/events?wait=0", &[]).bearer_auth(&alice)).await;
    assert_eq!(status, StatusCode::OK);

    // The same requests from our own pages, an allowed origin, or no page
    // at all are served.
    for headers in [
        vec![
            ("sec-fetch-site", "same-origin"),
            ("cookie", cookie.as_str()),
        ],
        vec![("origin", ALLOWED), ("cookie", cookie.as_str())],
        vec![("cookie", cookie.as_str())],
    ] {
        let (status, body) = send(with("/api/chat/rooms", &headers)).await;
        assert_eq!(status, StatusCode::OK, "{headers:?}: {body}");
        assert_eq!(body["rooms"][0]["id"], room.as_str());
    }
    let stream = with(&query, &[("origin", ALLOWED)]).send().await.unwrap();
    assert_eq!(stream.status(), StatusCode::OK);
    // A bearer token is sent only by a page's choice (and CORS asks first).
    let (status, _) = send(with("/api/chat/rooms", &[("origin", evil)]).bearer_auth(&alice)).await;
    assert_eq!(status, StatusCode::OK);
}
