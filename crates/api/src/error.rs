//! The one error type of the API: [`ApiError`] answers `{"error": {"code", "message"}}` with
//! a status. The errors of the layers below convert into it by `From` here, in one place
//! (engine: bad k → 400, unknown item → 404; store: busy → 503, else 500; extractor
//! rejections → 400/413/415), so handlers use `?`.

use axum::Json;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

/// An error answer: a status, a stable code and a message naming the problem.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// Seconds for a `Retry-After` header (429 and 503 answers).
    pub retry_after: Option<u64>,
    /// More fields of the error object (a refused rule's `field` and `position`).
    pub details: Option<serde_json::Map<String, serde_json::Value>>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            retry_after: None,
            details: None,
        }
    }

    pub(crate) fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    /// An error that is not the client's: a 500 with the details in the log (never sent).
    pub(crate) fn internal(e: impl std::fmt::Display) -> Self {
        tracing::error!("internal error: {e}");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "the server could not answer; the error is logged",
        )
    }

    /// 503 with `Retry-After`: the store is only busy (locked by another writer, or out of
    /// connections), which a retry gets past.
    fn store_busy(e: &marquee_store::Error) -> Self {
        tracing::warn!("store busy: {e}");
        Self {
            retry_after: Some(1),
            ..Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "store_busy",
                "the database is busy (locked by another writer); retry in a second",
            )
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut error = serde_json::Map::new();
        error.insert("code".into(), self.code.into());
        error.insert("message".into(), self.message.into());
        error.extend(self.details.unwrap_or_default());
        let body = serde_json::json!({ "error": error });
        let mut response = (self.status, Json(body)).into_response();
        if let Some(seconds) = self.retry_after {
            response
                .headers_mut()
                .insert(axum::http::header::RETRY_AFTER, seconds.into());
        }
        response
    }
}

impl From<QueryRejection> for ApiError {
    fn from(r: QueryRejection) -> Self {
        Self::bad_request("invalid_query", r.body_text())
    }
}

impl From<JsonRejection> for ApiError {
    fn from(r: JsonRejection) -> Self {
        let status = match r {
            JsonRejection::MissingJsonContentType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            JsonRejection::BytesRejection(_) => StatusCode::PAYLOAD_TOO_LARGE,
            _ => StatusCode::BAD_REQUEST,
        };
        Self::new(status, "invalid_body", r.body_text())
    }
}

impl From<marquee_engine::Error> for ApiError {
    fn from(e: marquee_engine::Error) -> Self {
        match e {
            marquee_engine::Error::BadK(_) => Self::bad_request("invalid_k", e.to_string()),
            marquee_engine::Error::UnknownItem(_) => {
                Self::new(StatusCode::NOT_FOUND, "unknown_item", e.to_string())
            }
            marquee_engine::Error::UnknownPlacement(_) => {
                Self::new(StatusCode::NOT_FOUND, "unknown_placement", e.to_string())
            }
            marquee_engine::Error::MissingInput { needs, .. } => {
                Self::bad_request("missing_input", format!("{e}: add {needs} to the request"))
            }
            marquee_engine::Error::BrokenPlacement { .. } => Self::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "placement_out_of_date",
                e.to_string(),
            ),
            other => Self::internal(other),
        }
    }
}

/// A placement spec refused: 400 `invalid_placement` with the field and the position in its
/// rule.
impl From<marquee_engine::SpecError> for ApiError {
    fn from(e: marquee_engine::SpecError) -> Self {
        let mut details = serde_json::Map::new();
        details.insert("field".into(), e.field.clone().into());
        if let Some(p) = e.position {
            details.insert("position".into(), p.into());
        }
        Self {
            details: Some(details),
            ..Self::bad_request("invalid_placement", e.to_string())
        }
    }
}

/// Store errors: an order the store refused is the client's (404/409/400 by the reason); a
/// busy database is 503 with `Retry-After`; anything else a logged 500.
impl From<marquee_store::Error> for ApiError {
    fn from(e: marquee_store::Error) -> Self {
        use marquee_store::OrderRefused;
        if let marquee_store::Error::OrderRefused(refused) = &e {
            let (status, code) = match refused {
                OrderRefused::UnknownItem { .. } => (StatusCode::NOT_FOUND, "unknown_item"),
                OrderRefused::NotForSale(_) => (StatusCode::CONFLICT, "not_for_sale"),
                OrderRefused::OutOfStock(_) => (StatusCode::CONFLICT, "out_of_stock"),
                OrderRefused::Conflict(_) => (StatusCode::CONFLICT, "order_conflict"),
                OrderRefused::Invalid(_) => (StatusCode::BAD_REQUEST, "invalid_order"),
            };
            return Self::new(status, code, refused.to_string());
        }
        if e.is_busy() {
            Self::store_busy(&e)
        } else {
            Self::internal(e)
        }
    }
}

/// A blocking task that panicked or was cancelled (the server is shutting down).
impl From<tokio::task::JoinError> for ApiError {
    fn from(e: tokio::task::JoinError) -> Self {
        Self::internal(e)
    }
}
