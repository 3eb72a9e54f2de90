//! The one error type of the application, and the one place it becomes HTTP:
//! `{"error": {"code": "snake_case", "message": "a sentence"}}` with its status.

use crate::model::Invalid;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use std::borrow::Cow;
use utoipa::{IntoResponses, ToSchema};

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// 400: the request could not be understood (syntax, query, path).
    #[error("{message}")]
    BadRequest {
        code: &'static str,
        message: Cow<'static, str>,
    },
    /// 401: no usable credentials. `token_given` adds `error="invalid_token"`.
    #[error("{message}")]
    Unauthorized {
        token_given: bool,
        message: Cow<'static, str>,
    },
    /// 403: the caller can see the thing but may not do this to it.
    #[error("{message}")]
    Forbidden {
        code: &'static str,
        message: Cow<'static, str>,
    },
    /// 404: absent, or not visible to the caller; the two are indistinguishable.
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("method not allowed")]
    MethodNotAllowed,
    /// 409: the request contradicts what is stored.
    #[error("{message}")]
    Conflict {
        code: &'static str,
        message: Cow<'static, str>,
    },
    /// 408: the request was not answered within `request_timeout`.
    #[error("the request took too long")]
    RequestTimeout,
    #[error("request body is too large")]
    PayloadTooLarge,
    /// 413: an upload past `attachment_max_bytes`.
    #[error("the file is larger than the limit of {0} bytes")]
    FileTooLarge(u64),
    /// 416: a download's range starts past the end of the file.
    #[error("the range asked for starts past the end of the file")]
    RangeNotSatisfiable,
    /// 411: an upload must say its length up front.
    #[error("an upload needs a Content-Length header (send the file as the body)")]
    LengthRequired,
    /// 415: an upload whose bytes are of a type the settings do not allow.
    #[error("files of type {0} may not be uploaded here")]
    TypeNotAllowed(String),
    /// 503: the blob store (the disk or the bucket) failed.
    #[error("the file storage is unavailable: {0}")]
    StorageUnavailable(String),
    #[error("{0}")]
    UnsupportedMediaType(&'static str),
    /// 429: try again after `retry_after` seconds.
    #[error("{message}")]
    TooManyRequests {
        retry_after: u64,
        message: Cow<'static, str>,
    },
    /// 422: well-formed, but a value breaks a rule.
    #[error("{}", .0.message)]
    Unprocessable(Invalid),
    /// 503: the store cannot be reached right now; retrying later may work.
    #[error("the store is unavailable")]
    Unavailable(#[source] std::sync::Arc<sqlx::Error>),
    /// 503: this process is shutting down; another instance should answer.
    #[error("the server is shutting down")]
    ShuttingDown,
    /// 500: a bug or an unexpected store failure. What went wrong, and the
    /// error that caused it, are logged, never sent.
    #[error("internal error: {context}")]
    Internal {
        context: Cow<'static, str>,
        #[source]
        cause: Option<std::sync::Arc<dyn std::error::Error + Send + Sync>>,
    },
    /// A write that failed in a way that leaves its outcome unknown (it timed
    /// out, or the store failed around its commit): it may have taken effect.
    /// Answered as the inner error, saying so (`"outcome": "unknown"`).
    #[error("{0}; it may or may not have taken effect")]
    Unsettled(Box<Error>),
}

impl Error {
    /// One batch's failure, for each of its requests: a store that could
    /// not be reached stays that (each may retry); anything else is the
    /// batch's internal error, shared as its cause.
    pub fn shared(error: &std::sync::Arc<Error>, batch: &'static str) -> Self {
        match &**error {
            Self::Unavailable(source) => Self::Unavailable(source.clone()),
            _ => Self::Internal {
                context: batch.into(),
                cause: Some(error.clone()),
            },
        }
    }

    /// Whether this is only a wait for a free connection of the store's
    /// pool that ran out of time: the store may well answer.
    pub fn is_pool_busy(&self) -> bool {
        matches!(self, Self::Unavailable(cause) if matches!(**cause, sqlx::Error::PoolTimedOut))
    }

    pub fn bad_request(code: &'static str, message: impl Into<Cow<'static, str>>) -> Self {
        Self::BadRequest {
            code,
            message: message.into(),
        }
    }

    pub fn forbidden(code: &'static str, message: impl Into<Cow<'static, str>>) -> Self {
        Self::Forbidden {
            code,
            message: message.into(),
        }
    }

    pub fn conflict(code: &'static str, message: impl Into<Cow<'static, str>>) -> Self {
        Self::Conflict {
            code,
            message: message.into(),
        }
    }

    pub fn unprocessable(code: &'static str, message: impl Into<String>) -> Self {
        Self::Unprocessable(Invalid {
            code,
            message: message.into(),
        })
    }

    /// A bug, or a failure nobody can act on but us.
    pub fn internal(context: impl Into<Cow<'static, str>>) -> Self {
        Self::Internal {
            context: context.into(),
            cause: None,
        }
    }

    /// The same, caused by `cause`, which the log shows.
    pub fn internal_from(
        context: impl Into<Cow<'static, str>>,
        cause: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Self::Internal {
            context: context.into(),
            cause: Some(std::sync::Arc::new(cause)),
        }
    }

    /// This failure of a write, which may nevertheless have taken effect.
    pub fn unsettled(self) -> Self {
        match self {
            Self::Unsettled(_) => self,
            other => Self::Unsettled(Box::new(other)),
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            Self::Unsettled(inner) => inner.status(),
            Self::BadRequest { .. } => StatusCode::BAD_REQUEST,
            Self::Unauthorized { .. } => StatusCode::UNAUTHORIZED,
            Self::Forbidden { .. } => StatusCode::FORBIDDEN,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::Conflict { .. } => StatusCode::CONFLICT,
            Self::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            Self::PayloadTooLarge | Self::FileTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::LengthRequired => StatusCode::LENGTH_REQUIRED,
            Self::RangeNotSatisfiable => StatusCode::RANGE_NOT_SATISFIABLE,
            Self::TypeNotAllowed(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::StorageUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::Unprocessable(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::Unavailable(_) | Self::ShuttingDown => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal { .. } => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            Self::Unsettled(inner) => inner.code(),
            Self::BadRequest { code, .. }
            | Self::Conflict { code, .. }
            | Self::Forbidden { code, .. } => code,
            Self::Unprocessable(invalid) => invalid.code,
            Self::Unauthorized {
                token_given: true, ..
            } => "invalid_token",
            Self::Unauthorized { .. } => "unauthorized",
            Self::NotFound(what) => match *what {
                "room" => "room_not_found",
                "agent" => "agent_not_found",
                "attachment" => "attachment_not_found",
                _ => "not_found",
            },
            Self::MethodNotAllowed => "method_not_allowed",
            Self::TooManyRequests { .. } => "too_many_requests",
            Self::RequestTimeout => "request_timeout",
            Self::PayloadTooLarge => "payload_too_large",
            Self::FileTooLarge(_) => "attachment_too_large",
            Self::LengthRequired => "length_required",
            Self::RangeNotSatisfiable => "range_not_satisfiable",
            Self::TypeNotAllowed(_) => "attachment_type_not_allowed",
            Self::StorageUnavailable(_) => "storage_unavailable",
            Self::UnsupportedMediaType(_) => "unsupported_media_type",
            Self::Unavailable(_) => "store_unavailable",
            Self::ShuttingDown => "shutting_down",
            Self::Internal { .. } => "internal_error",
        }
    }

    /// The sentence a client sees. Internal failures say nothing about internals.
    fn public_message(&self) -> String {
        match self {
            Self::Internal { .. } => "an internal error occurred".to_owned(),
            Self::Unavailable(_) => "the store is unavailable; try again shortly".to_owned(),
            Self::StorageUnavailable(_) => {
                "the file storage is unavailable; try again shortly".to_owned()
            }
            Self::Unsettled(inner) => format!(
                "{}; the request may or may not have taken effect: a message sent again \
                 with the same clientId is stored once, and adding or removing a member \
                 again changes nothing, but a room created again is another room",
                inner.public_message()
            ),
            other => other.to_string(),
        }
    }
}

/// The body of every error answer, as the OpenAPI document describes it.
#[derive(ToSchema)]
#[allow(dead_code)] // Only described: `IntoResponse` writes the body.
pub struct ErrorBody {
    error: ErrorInfo,
}

#[derive(ToSchema)]
#[allow(dead_code)]
pub struct ErrorInfo {
    /// Stable, snake_case: what a client branches on.
    #[schema(example = "room_not_found")]
    code: String,
    /// A sentence for humans.
    message: String,
    /// `unknown` when a write failed in a way that leaves open whether it
    /// took effect (a `408`, or a `503` around its commit): retry it with
    /// the same idempotency key (`clientId`), which never applies it twice.
    #[schema(nullable = false)]
    outcome: Option<Outcome>,
}

#[derive(ToSchema)]
#[schema(rename_all = "snake_case")]
#[allow(dead_code)]
enum Outcome {
    Unknown,
}

/// What every route that reads may answer besides its success (OpenAPI).
#[derive(IntoResponses)]
#[allow(dead_code)]
pub enum ReadErrors {
    /// A malformed path, query parameter or header.
    #[response(status = 400)]
    BadRequest(ErrorBody),
    /// No token, or one that is invalid, expired or signed by a stranger.
    #[response(status = 401)]
    Unauthorized(ErrorBody),
    /// The caller may see the thing, but not do this.
    #[response(status = 403)]
    Forbidden(ErrorBody),
    /// Absent, or not visible to the caller: the two look alike.
    #[response(status = 404)]
    NotFound(ErrorBody),
    /// Not answered within `request_timeout` (a body sent too slowly).
    #[response(status = 408)]
    RequestTimeout(ErrorBody),
    /// Too many requests of this kind: retry after `Retry-After` seconds.
    #[response(status = 429)]
    TooManyRequests(ErrorBody),
    /// A bug; details go to the log, never to the client.
    #[response(status = 500)]
    Internal(ErrorBody),
    /// The store is unreachable or the server is shutting down: retry.
    #[response(status = 503)]
    Unavailable(ErrorBody),
}

/// What a route that takes a JSON body may answer besides [`ReadErrors`].
#[derive(IntoResponses)]
#[allow(dead_code)]
pub enum BodyErrors {
    /// The request contradicts what is stored (a reused `clientId`).
    #[response(status = 409)]
    Conflict(ErrorBody),
    /// The body is larger than `max_body_bytes`.
    #[response(status = 413)]
    PayloadTooLarge(ErrorBody),
    /// The body is not `application/json`.
    #[response(status = 415)]
    UnsupportedMediaType(ErrorBody),
    /// Well-formed JSON with a value that breaks a rule, or not JSON at all.
    #[response(status = 422)]
    Unprocessable(ErrorBody),
}

/// Carried in the extensions of a 5xx response, for the logging layer to report.
#[derive(Debug, Clone)]
pub struct ErrorDetail(pub String);

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let status = self.status();
        let mut body = json!({"error": {"code": self.code(), "message": self.public_message()}});
        if let Self::Unsettled(_) = &self {
            body["error"]["outcome"] = json!("unknown");
        }
        let mut response = (status, axum::Json(body)).into_response();
        if let Self::Unauthorized { token_given, .. } = &self {
            let challenge = if *token_given {
                r#"Bearer error="invalid_token""#
            } else {
                "Bearer"
            };
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(challenge),
            );
        }
        let retry_after = match &self {
            Self::Unavailable(_) | Self::StorageUnavailable(_) => Some(1),
            Self::Unsettled(inner) if matches!(**inner, Self::Unavailable(_)) => Some(1),
            Self::TooManyRequests { retry_after, .. } => Some(*retry_after),
            _ => None,
        };
        if let Some(seconds) = retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        if status.is_server_error() {
            let detail = match &self {
                Self::Unavailable(source) => format!("store unavailable: {source}"),
                Self::Unsettled(inner) => match &**inner {
                    Self::Unavailable(source) => format!("store unavailable at a write: {source}"),
                    other => with_causes(other),
                },
                other => with_causes(other),
            };
            response.extensions_mut().insert(ErrorDetail(detail));
        }
        response
    }
}

impl From<Invalid> for Error {
    fn from(invalid: Invalid) -> Self {
        Self::Unprocessable(invalid)
    }
}

impl From<sqlx::Error> for Error {
    /// Connectivity problems are worth a retry (503); anything else is our bug (500).
    fn from(error: sqlx::Error) -> Self {
        match error {
            sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::WorkerCrashed => Self::Unavailable(error.into()),
            sqlx::Error::Database(db) if is_busy(db.as_ref()) => {
                Self::Unavailable(sqlx::Error::Database(db).into())
            }
            other => Self::internal_from("the store failed", other),
        }
    }
}

/// An error and every error that caused it, for the log.
fn with_causes(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(next) = cause {
        text.push_str(": ");
        text.push_str(&next.to_string());
        cause = next.source();
    }
    text
}

/// SQLite's "database is locked/busy" after the busy timeout, or PostgreSQL
/// shutting down / refusing connections: transient, not a bug.
fn is_busy(error: &dyn sqlx::error::DatabaseError) -> bool {
    matches!(
        error.code().as_deref(),
        Some("5" | "6" | "517" | "57P01" | "57P02" | "57P03" | "53300")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_internal_error_tells_the_log_its_cause_and_the_client_nothing() {
        let cause = serde_json::from_str::<serde_json::Value>("{").unwrap_err();
        let response = Error::internal_from("a logged event is not JSON", cause).into_response();
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let Some(ErrorDetail(detail)) = response.extensions().get::<ErrorDetail>() else {
            panic!("a 500 carries its detail for the log");
        };
        assert!(
            detail.starts_with("internal error: a logged event is not JSON: EOF while parsing"),
            "{detail}"
        );
    }
}
