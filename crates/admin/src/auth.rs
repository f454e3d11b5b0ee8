//! Bearer-token authorization of write calls (`admin.token_file`).
//!
//! Control path. Reads stay open (the dashboard and scrapers need no secret);
//! every call that changes something takes the [`WriteAccess`] extractor, which
//! answers 401 unless `Authorization: Bearer <token>` matches. The comparison is
//! constant-time (`subtle`), so response timing does not leak how much of a guess
//! was right.

use std::path::Path;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use subtle::ConstantTimeEq;

use crate::error::ApiError;
use crate::AdminState;

/// The admin token, read once at start.
#[derive(Clone)]
pub struct Token(String);

impl Token {
    pub fn load(path: &Path) -> std::io::Result<Token> {
        let text = std::fs::read_to_string(path)?;
        let token = text.trim();
        if token.is_empty() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("{} is empty", path.display()),
            ));
        }
        Ok(Token(token.to_string()))
    }

    pub fn new(token: impl Into<String>) -> Token {
        Token(token.into())
    }

    fn matches(&self, presented: &str) -> bool {
        self.0.as_bytes().ct_eq(presented.as_bytes()).into()
    }
}

/// Proof that a request may write; extracting it checks the token.
pub struct WriteAccess;

impl FromRequestParts<AdminState> for WriteAccess {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AdminState,
    ) -> Result<Self, Self::Rejection> {
        let Some(token) = &state.token else {
            return Ok(WriteAccess);
        };
        let presented = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        if token.matches(presented.trim()) {
            Ok(WriteAccess)
        } else {
            Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "this call changes the configuration: send Authorization: Bearer <token> (admin.token_file)",
            ))
        }
    }
}
