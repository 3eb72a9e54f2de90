//! Axum's extractors, with their rejections turned into our JSON errors, so a
//! malformed body, query or path never answers with plain text.

use crate::error::Error;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

/// A JSON object body; answers with JSON too. Unlike `axum::Json`, it refuses
/// a JSON array where an object is expected (serde would read it by position).
#[derive(Debug)]
pub struct Json<T>(pub T);

impl<S, T> FromRequest<S> for Json<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = Error;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let axum::Json(value) = axum::Json::<Value>::from_request(request, state).await?;
        if !value.is_object() {
            return Err(Error::unprocessable(
                "invalid_field",
                "the request body must be a JSON object",
            ));
        }
        serde_path_to_error::deserialize(value)
            .map(Json)
            .map_err(|e| match e.path().to_string().as_str() {
                "." => Error::unprocessable("invalid_field", e.inner().to_string()),
                path => Error::unprocessable("invalid_field", format!("{path}: {}", e.inner())),
            })
    }
}

impl<T: Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

#[derive(Debug, FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(Error))]
pub struct Query<T>(pub T);

#[derive(Debug, FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(Error))]
pub struct Path<T>(pub T);

impl From<JsonRejection> for Error {
    fn from(rejection: JsonRejection) -> Self {
        match rejection {
            JsonRejection::JsonDataError(e) => Error::unprocessable("invalid_field", e.body_text()),
            JsonRejection::JsonSyntaxError(e) => {
                Error::bad_request("malformed_json", e.body_text())
            }
            JsonRejection::MissingJsonContentType(_) => {
                Error::UnsupportedMediaType("the request body must be sent as application/json")
            }
            other if other.status() == StatusCode::PAYLOAD_TOO_LARGE => Error::PayloadTooLarge,
            other => Error::bad_request("unreadable_body", other.body_text()),
        }
    }
}

impl From<QueryRejection> for Error {
    fn from(rejection: QueryRejection) -> Self {
        Error::bad_request("invalid_query", rejection.body_text())
    }
}

impl From<PathRejection> for Error {
    fn from(rejection: PathRejection) -> Self {
        Error::bad_request("invalid_path", rejection.body_text())
    }
}
