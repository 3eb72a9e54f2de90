//! Who is calling: JWT verification (HS256 with the shared secret, and/or
//! RS256/ES256/EdDSA with a public key), where a request's token is found
//! (and from which pages a browser's ambient token counts), and minting
//! tokens for the `token` command. Also the development secret.

use crate::config::{Config, Secret};
use crate::error::Error;
use crate::inbox::Inbox;
use crate::model::{Caller, Role, UserId};
use crate::origin::Initiator;
use axum::extract::{FromRef, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{Method, header};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Longer tokens are refused before any parsing: no legitimate token is this big.
const MAX_TOKEN_BYTES: usize = 8 * 1024;

/// The name of the generated development secret under the data directory.
pub const DEV_SECRET_FILE: &str = "jwt_secret";

#[derive(Debug, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    pub exp: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aud: Option<Audience>,
    /// The person's display name (OpenID Connect's `name`), if given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<serde_json::Value>,
}

/// A token's `aud`: one audience, or several (RFC 7519 allows both, and
/// identity providers send either). jsonwebtoken checks it against the
/// configured audience; any one match passes.
#[derive(Debug, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Audience {
    One(String),
    Many(Vec<String>),
}

/// A verified token: who it speaks for, and until when (Unix seconds).
#[derive(Debug, Clone)]
pub struct Session {
    pub caller: Caller,
    pub expires_at: u64,
    /// The token's `name` claim, if it is a usable one (see `display_name`).
    pub name: Option<String>,
}

/// Names longer than this are cut: a display name, not a document.
const MAX_NAME_CHARS: usize = 100;

/// A `name` claim as we show it: a string, without control characters
/// nor the invisible ones that reorder or hide text (bidirectional
/// overrides, zero-width characters, line and paragraph separators),
/// trimmed and cut to `MAX_NAME_CHARS`; anything else is no name (a token
/// is not refused for it).
fn display_name(claim: Option<&serde_json::Value>) -> Option<String> {
    let name = crate::model::visible_text(claim?.as_str()?, MAX_NAME_CHARS);
    (!name.is_empty()).then_some(name)
}

/// The keys and rules tokens are checked against.
pub struct Auth {
    /// HS256's, when a secret is configured (or generated in development
    /// without a public key): with a public key alone, HS256 is refused.
    secret: Option<(EncodingKey, DecodingKey)>,
    public: Option<(Algorithm, DecodingKey)>,
    issuer: Option<String>,
    audience: Option<String>,
    leeway: Duration,
    max_lifetime: Duration,
    cookie: String,
    /// Origins whose pages may send the cookie or a query token (see `origin`).
    allowed_origins: Vec<String>,
}

/// Where a request's token was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TokenSource {
    /// `Authorization: Bearer`: a page can only send it by choice, after CORS.
    Header,
    /// `access_token` or the cookie: a browser may carry either on a request
    /// another site's page made, so they are honoured from our pages only.
    Ambient,
}

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("could not read the JWT public key {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("the JWT public key is not a valid {algorithm} PEM key: {source}")]
    Parse {
        algorithm: String,
        source: jsonwebtoken::errors::Error,
    },
    #[error("jwt_public_key_algorithm must be RS256, ES256 or EdDSA, not `{0}`")]
    Algorithm(String),
}

impl Auth {
    /// `secret` signs and checks HS256 tokens; without one, only tokens
    /// signed by the configured key pair are accepted.
    pub fn new(config: &Config, secret: Option<&Secret>) -> Result<Self, KeyError> {
        let public = match (
            &config.jwt_public_key_file,
            &config.jwt_public_key_algorithm,
        ) {
            (Some(path), Some(algorithm)) => Some(load_public_key(path, algorithm)?),
            _ => None,
        };
        let secret = secret.map(|secret| {
            let bytes = secret.expose().as_bytes();
            (
                EncodingKey::from_secret(bytes),
                DecodingKey::from_secret(bytes),
            )
        });
        Ok(Self {
            secret,
            public,
            issuer: config.jwt_issuer.clone(),
            audience: config.jwt_audience.clone(),
            leeway: config.jwt_leeway.0,
            max_lifetime: config.token_max_lifetime.0,
            cookie: config.token_cookie.clone(),
            allowed_origins: config.cors_allowed_origins.clone(),
        })
    }

    /// Signs an HS256 token for `sub`, valid for `ttl`, with the configured `iss`/`aud`.
    pub fn mint(&self, sub: &UserId, role: Role, ttl: Duration) -> Result<String, Error> {
        let Some((secret, _)) = &self.secret else {
            return Err(Error::conflict(
                "no_signing_secret",
                "this server has no jwt_secret to sign with: it accepts tokens signed by the \
                 key pair of jwt_public_key_file only",
            ));
        };
        if ttl > self.max_lifetime {
            return Err(Error::bad_request(
                "token_lifetime",
                "a token may not live longer than token_max_lifetime",
            ));
        }
        let iat = unix_now();
        let exp = iat + ttl.as_secs();
        let claims = Claims {
            sub: sub.to_string(),
            role: Some(
                match role {
                    Role::Admin => "admin",
                    Role::User => "user",
                }
                .to_owned(),
            ),
            exp,
            iat: Some(iat),
            nbf: None,
            iss: self.issuer.clone(),
            aud: self.audience.clone().map(Audience::One),
            name: None,
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, secret)
            .map_err(|e| Error::internal_from("could not sign a token", e))
    }

    /// Checks a token and says who it speaks for. Every failure is a 401.
    pub fn verify(&self, token: &str) -> Result<Session, Error> {
        let invalid = |message: &'static str| Error::Unauthorized {
            token_given: true,
            message: message.into(),
        };
        if token.len() > MAX_TOKEN_BYTES {
            return Err(invalid("the token is too long"));
        }
        let header = jsonwebtoken::decode_header(token)
            .map_err(|_| invalid("the token is not a well-formed JWT"))?;
        // RFC 7515 § 4.1.11: extensions a token marks critical must be
        // understood, or the token refused; we implement none.
        if header.crit.is_some() {
            return Err(invalid(
                "the token names critical header parameters this server does not implement",
            ));
        }
        let key = match (header.alg, &self.secret, &self.public) {
            (Algorithm::HS256, Some((_, secret)), _) => secret,
            (alg, _, Some((public_alg, key))) if alg == *public_alg => key,
            _ => return Err(invalid("the token's algorithm is not accepted")),
        };
        let mut validation = Validation::new(header.alg);
        validation.leeway = self.leeway.as_secs();
        validation.validate_nbf = true;
        let mut required = vec!["exp", "sub"];
        match &self.issuer {
            Some(issuer) => {
                validation.set_issuer(&[issuer]);
                required.push("iss");
            }
            None => validation.iss = None,
        }
        match &self.audience {
            Some(audience) => {
                validation.set_audience(&[audience]);
                required.push("aud");
            }
            None => validation.validate_aud = false,
        }
        validation.set_required_spec_claims(&required);
        let data = jsonwebtoken::decode::<Claims>(token, key, &validation).map_err(|e| {
            use jsonwebtoken::errors::ErrorKind;
            match e.kind() {
                ErrorKind::ExpiredSignature => invalid("the token has expired"),
                ErrorKind::ImmatureSignature => invalid("the token is not valid yet"),
                ErrorKind::InvalidSignature => invalid("the token's signature is invalid"),
                ErrorKind::InvalidIssuer => invalid("the token's issuer is not accepted"),
                ErrorKind::InvalidAudience => invalid("the token's audience is not accepted"),
                _ => invalid("the token is invalid"),
            }
        })?;
        // A token "issued" in the future is forged or from a clock that is
        // wrong: refused beyond the leeway, like an `nbf` ahead.
        let now = unix_now();
        if data
            .claims
            .iat
            .is_some_and(|iat| iat > now + self.leeway.as_secs())
        {
            return Err(invalid("the token was issued in the future"));
        }
        // A long-lived token is a standing risk if it leaks: measured from
        // the earlier of its issue and now, so a future `iat` cannot shorten it.
        let issued = data.claims.iat.map_or(now, |iat| iat.min(now));
        let lifetime = data.claims.exp.saturating_sub(issued);
        if lifetime > self.max_lifetime.as_secs() + self.leeway.as_secs() {
            return Err(invalid("the token's lifetime exceeds the accepted maximum"));
        }
        let role = match data.claims.role.as_deref() {
            None | Some("user") => Role::User,
            Some("admin") => Role::Admin,
            Some(_) => return Err(invalid("the token's role must be \"admin\" or \"user\"")),
        };
        let id = UserId::parse(data.claims.sub)
            .map_err(|_| invalid("the token's subject is not a valid user id"))?;
        Ok(Session {
            caller: Caller { id, role },
            expires_at: data.claims.exp,
            name: display_name(data.claims.name.as_ref()),
        })
    }

    /// Finds the request's token: the `Authorization: Bearer` header, else (on
    /// reads only, so a cookie cannot carry a cross-site write) the
    /// `access_token` query parameter, else the token cookie.
    fn token_in<'a>(
        &self,
        parts: &'a Parts,
    ) -> Result<Option<(std::borrow::Cow<'a, str>, TokenSource)>, Error> {
        if let Some(value) = parts.headers.get(header::AUTHORIZATION) {
            let value = value.to_str().ok().and_then(|v| {
                let (scheme, token) = v.split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
            });
            return match value {
                Some(token) if !token.is_empty() => Ok(Some((token.into(), TokenSource::Header))),
                _ => Err(Error::Unauthorized {
                    token_given: true,
                    message: "the Authorization header must be `Bearer <token>`".into(),
                }),
            };
        }
        if parts.method != Method::GET && parts.method != Method::HEAD {
            return Ok(None);
        }
        if let Some(query) = parts.uri.query() {
            let token = form_urlencoded::parse(query.as_bytes())
                .find(|(name, _)| name == "access_token")
                .map(|(_, value)| value);
            if let Some(token) = token {
                return Ok(Some((token.into_owned().into(), TokenSource::Ambient)));
            }
        }
        let cookie = parts
            .headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|pair| pair.trim().split_once('='))
            .find(|(name, _)| *name == self.cookie)
            .map(|(_, value)| value.trim_matches('"'));
        Ok(cookie.map(|token| (token.into(), TokenSource::Ambient)))
    }
}

fn load_public_key(path: &Path, algorithm: &str) -> Result<(Algorithm, DecodingKey), KeyError> {
    let pem = std::fs::read(path).map_err(|source| KeyError::Read {
        path: path.display().to_string(),
        source,
    })?;
    let parsed = match algorithm {
        "RS256" => DecodingKey::from_rsa_pem(&pem).map(|k| (Algorithm::RS256, k)),
        "ES256" => DecodingKey::from_ec_pem(&pem).map(|k| (Algorithm::ES256, k)),
        "EdDSA" => DecodingKey::from_ed_pem(&pem).map(|k| (Algorithm::EdDSA, k)),
        other => return Err(KeyError::Algorithm(other.to_owned())),
    };
    parsed.map_err(|source| KeyError::Parse {
        algorithm: algorithm.to_owned(),
        source,
    })
}

pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

/// Reads the development secret kept under `data_dir`, creating it on first use
/// so restarts and `chat-server token` agree. Returns whether it was created.
pub fn load_or_create_dev_secret(data_dir: &Path) -> std::io::Result<(Secret, bool)> {
    let path = data_dir.join(DEV_SECRET_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) if !text.trim().is_empty() => return Ok((Secret::new(text.trim()), false)),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| std::io::Error::other(e.to_string()))?;
    let secret: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    std::fs::create_dir_all(data_dir)?;
    write_private(&path, &secret)?;
    Ok((Secret::new(secret), true))
}

#[cfg(unix)]
fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(contents.as_bytes())
}

#[cfg(not(unix))]
fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    std::fs::write(path, contents)
}

/// A request's verified token; an admin's notes them as an agent of the
/// inbox (see `inbox::AgentRoster`).
impl<S> FromRequestParts<S> for Session
where
    Arc<Auth>: FromRef<S>,
    Arc<Inbox>: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let auth = Arc::<Auth>::from_ref(state);
        match auth.token_in(parts)? {
            // Refused before the token is verified: a forged request
            // learns nothing of it, and takes no stream slot.
            Some((_, TokenSource::Ambient))
                if Initiator::of(&parts.headers, &auth.allowed_origins) == Initiator::Foreign =>
            {
                Err(Error::forbidden(
                    "cross_site_request",
                    "a page of another site may not use the token cookie or an access_token \
                     parameter: send the token as `Authorization: Bearer`, or list the page's \
                     origin in cors_allowed_origins",
                ))
            }
            Some((token, _)) => {
                let session = auth.verify(&token)?;
                Arc::<Inbox>::from_ref(state)
                    .agents
                    .saw(&session.caller, session.name.as_deref())
                    .await;
                Ok(session)
            }
            None => Err(Error::Unauthorized {
                token_given: false,
                message: "a bearer token is required".into(),
            }),
        }
    }
}

impl<S> FromRequestParts<S> for Caller
where
    Arc<Auth>: FromRef<S>,
    Arc<Inbox>: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        Session::from_request_parts(parts, state)
            .await
            .map(|session| session.caller)
    }
}

#[cfg(test)]
mod tests {
    use super::display_name;
    use serde_json::json;

    #[test]
    fn a_name_claim_is_shown_without_what_hides_or_reorders_text_and_is_cut_short() {
        let name = |value| display_name(Some(&value));
        assert_eq!(name(json!("  Ada Lovelace ")), Some("Ada Lovelace".into()));
        assert_eq!(
            name(json!("Ada\u{202E}ecalevol\u{200B}\n")),
            Some("Adaecalevol".into())
        );
        assert_eq!(
            name(json!("é".repeat(300))).map(|n| n.chars().count()),
            Some(100)
        );
        for nothing in [json!(""), json!(" \u{200B} "), json!(42), json!(["Ada"])] {
            assert_eq!(name(nothing), None);
        }
        assert_eq!(display_name(None), None);
    }
}
