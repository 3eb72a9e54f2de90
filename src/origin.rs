//! Where a browser's request comes from: a page of this server, a page of an
//! allowed origin, or a page of another site. What a browser sends with a
//! token nobody typed (the cookie, or an `access_token` in a URL another
//! page built) is only honoured from the first two: the defence against
//! cross-site request forgery, with `Sec-Fetch-Site` (Fetch Metadata) first
//! and `Origin` beside it.

use axum::http::{HeaderMap, header};

/// Who sent a request, as far as its headers tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Initiator {
    /// Not a browser page, as far as can be told: no `Origin`, and no
    /// `Sec-Fetch-Site` naming a page (curl, a server, a typed address).
    NoPage,
    /// A page this server served.
    SameOrigin,
    /// A page of an origin in `cors_allowed_origins`.
    Allowed,
    /// A page of any other origin.
    Foreign,
}

impl Initiator {
    /// Reads the request's `Origin`, `Sec-Fetch-Site` and `Host`. Browsers
    /// set the first two themselves (no page can), so a page cannot pass
    /// for another; a client that is no browser can send anything, but it
    /// holds its own token and gains nothing.
    pub fn of(headers: &HeaderMap, allowed: &[String]) -> Self {
        let text = |name| headers.get(name).and_then(|value| value.to_str().ok());
        let site = text(header::HeaderName::from_static("sec-fetch-site"));
        let Some(origin) = headers.get(header::ORIGIN) else {
            // No `Origin`: a same-origin read, a navigation, or no browser.
            // An `<img>` or a link on another site sends none either, but
            // says where it came from in `Sec-Fetch-Site`.
            return match site {
                Some("cross-site" | "same-site") => Self::Foreign,
                Some("same-origin") => Self::SameOrigin,
                _ => Self::NoPage,
            };
        };
        // An opaque origin (`null`, a sandboxed frame or a file) or one
        // that is not text is nobody's.
        let Ok(origin) = origin.to_str() else {
            return Self::Foreign;
        };
        if site == Some("same-origin") {
            return Self::SameOrigin;
        }
        if allowed
            .iter()
            .any(|allowed| allowed.eq_ignore_ascii_case(origin))
        {
            return Self::Allowed;
        }
        // Browsers without Fetch Metadata: the origin against the `Host`
        // the request was sent to.
        let host = text(header::HOST);
        if site.is_none() && host.is_some_and(|host| same_authority(origin, host)) {
            return Self::SameOrigin;
        }
        Self::Foreign
    }
}

/// Whether the request was sent to this machine by a loopback name: an IP
/// literal of loopback, or `localhost`. A page can re-point a name of its
/// own at 127.0.0.1 (DNS rebinding) and so be same-origin with a server
/// there; its requests then carry that name in `Host`.
pub fn addressed_to_loopback(headers: &HeaderMap) -> bool {
    let Some(host) = headers
        .get(header::HOST)
        .and_then(|host| host.to_str().ok())
    else {
        return false;
    };
    // `[::1]:8080`, `[::1]`, `127.0.0.1:8080`, `localhost`.
    let name = match host.strip_prefix('[') {
        Some(bracketed) => bracketed.split(']').next().unwrap_or_default(),
        None => host.rsplit_once(':').map_or(host, |(name, _)| name),
    };
    let name = name.trim_end_matches('.');
    name.eq_ignore_ascii_case("localhost")
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|address| address.to_canonical().is_loopback())
}

/// Whether `origin` (`scheme://host[:port]`) names the server reached at
/// `host` (`host[:port]`), default ports spelled or not.
fn same_authority(origin: &str, host: &str) -> bool {
    let Some((scheme, authority)) = origin.split_once("://") else {
        return false;
    };
    let default_port = match scheme.to_ascii_lowercase().as_str() {
        "http" => "80",
        "https" => "443",
        _ => return false,
    };
    let with_port = |authority: &str| {
        // `[::1]:80` splits at its last colon, `[::1]` has none after `]`.
        match authority.rsplit_once(':') {
            Some((name, port)) if !port.contains(']') => (name.to_owned(), port.to_owned()),
            _ => (authority.to_owned(), default_port.to_owned()),
        }
    };
    let (origin_name, origin_port) = with_port(authority);
    let (host_name, host_port) = with_port(host);
    origin_name.eq_ignore_ascii_case(&host_name) && origin_port == host_port
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn initiator(headers: &[(&'static str, &'static str)], allowed: &[&str]) -> Initiator {
        let mut map = HeaderMap::new();
        for (name, value) in headers {
            map.insert(*name, HeaderValue::from_static(value));
        }
        let allowed: Vec<String> = allowed.iter().map(|o| (*o).to_owned()).collect();
        Initiator::of(&map, &allowed)
    }

    #[test]
    fn a_page_of_another_site_is_foreign_whichever_header_tells() {
        use Initiator::*;
        let evil = ("origin", "https://evil.example");
        let host = ("host", "127.0.0.1:8080");
        assert_eq!(initiator(&[evil, host], &[]), Foreign);
        assert_eq!(
            initiator(&[evil, host, ("sec-fetch-site", "cross-site")], &[]),
            Foreign
        );
        // An `<img>` on another site sends no Origin, but says so.
        assert_eq!(
            initiator(&[host, ("sec-fetch-site", "cross-site")], &[]),
            Foreign
        );
        assert_eq!(
            initiator(&[host, ("sec-fetch-site", "same-site")], &[]),
            Foreign
        );
        assert_eq!(initiator(&[("origin", "null"), host], &[]), Foreign);
        // Fetch Metadata wins over a Host that happens to match.
        assert_eq!(
            initiator(
                &[
                    ("origin", "http://127.0.0.1:8080"),
                    host,
                    ("sec-fetch-site", "cross-site")
                ],
                &[]
            ),
            Foreign
        );
    }

    #[test]
    fn only_loopback_names_address_a_development_server() {
        let with_host = |host: &'static str| {
            let mut headers = HeaderMap::new();
            headers.insert("host", HeaderValue::from_static(host));
            addressed_to_loopback(&headers)
        };
        for ours in [
            "127.0.0.1:8080",
            "127.0.0.2",
            "[::1]:8080",
            "[::1]",
            "localhost:8080",
            "LOCALHOST",
            "localhost.",
            "[::ffff:127.0.0.1]:80",
        ] {
            assert!(with_host(ours), "{ours}");
        }
        for theirs in [
            "evil.example:8080",
            "localhost.evil.example",
            "127.0.0.1.nip.io",
            "10.0.0.1:8080",
            "[::2]:80",
            "",
        ] {
            assert!(!with_host(theirs), "{theirs}");
        }
        assert!(!addressed_to_loopback(&HeaderMap::new()));
    }

    #[test]
    fn our_own_pages_and_allowed_origins_are_told_apart_from_no_page_at_all() {
        use Initiator::*;
        let host = ("host", "127.0.0.1:8080");
        assert_eq!(initiator(&[host], &[]), NoPage);
        assert_eq!(initiator(&[host, ("sec-fetch-site", "none")], &[]), NoPage);
        assert_eq!(
            initiator(&[host, ("sec-fetch-site", "same-origin")], &[]),
            SameOrigin
        );
        // Behind a proxy the Host may differ; Fetch Metadata still tells.
        assert_eq!(
            initiator(
                &[
                    ("origin", "https://chat.example.com"),
                    ("host", "backend:8080"),
                    ("sec-fetch-site", "same-origin")
                ],
                &[]
            ),
            SameOrigin
        );
        // A browser without Fetch Metadata: Origin against Host.
        assert_eq!(
            initiator(&[("origin", "http://127.0.0.1:8080"), host], &[]),
            SameOrigin
        );
        assert_eq!(
            initiator(
                &[
                    ("origin", "HTTP://Chat.Example.com"),
                    ("host", "chat.example.com:80")
                ],
                &[]
            ),
            SameOrigin
        );
        assert_eq!(
            initiator(
                &[("origin", "http://[::1]:8080"), ("host", "[::1]:8080")],
                &[]
            ),
            SameOrigin
        );
        assert_eq!(
            initiator(&[("origin", "http://127.0.0.1:9090"), host], &[]),
            Foreign
        );
        let app = "https://app.example.com";
        assert_eq!(
            initiator(
                &[
                    ("origin", "https://app.example.com"),
                    host,
                    ("sec-fetch-site", "cross-site")
                ],
                &[app]
            ),
            Allowed
        );
    }
}
