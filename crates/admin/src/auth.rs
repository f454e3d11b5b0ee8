//! Who may call what: the write token (`admin.token_file`), the read token
//! (`admin.read_token_file`), and the extractors that check them.
//!
//! Control path. Three levels, one extractor each:
//! - [`WriteAccess`] (PUT, POST, DELETE): the write token, when one is set. A
//!   refused write is audited (`unauthorized`, WARN) before the 401 goes out, and
//!   applies nothing.
//! - [`ReadAccess`] (config, target groups, health, anomalies, audit): when a read
//!   token is set, the read token or the write token; open otherwise.
//! - [`MetricsAccess`] (`/metrics`): like a read, except that a client connecting
//!   from a loopback address needs no token (a local Prometheus or the node's own
//!   agent). The dashboard page and the OpenAPI document are static text holding no
//!   state and stay open.
//!
//! A presented token is hashed (SHA-256) and the digest compared with each
//! configured token's digest in constant time (`subtle`), both compared every
//! time: neither the response time nor the token's length says how close a guess
//! was. Callers are identified in the audit trail by which token they presented —
//! `write`, `read`, `none`, or the first 8 hex digits of the digest of an unknown
//! one — never by the token itself.

use std::net::SocketAddr;
use std::path::Path;

use aws_lc_rs::digest;
use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use subtle::ConstantTimeEq;

use crate::audit::Origin;
use crate::error::ApiError;
use crate::AdminState;

/// A configured token, kept as its SHA-256 digest.
#[derive(Clone)]
pub struct Token([u8; 32]);

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
        Ok(Token::new(token))
    }

    pub fn new(token: impl AsRef<str>) -> Token {
        Token(sha256(token.as_ref()))
    }

    fn matches(&self, presented: &[u8; 32]) -> bool {
        self.0.ct_eq(presented).into()
    }
}

fn sha256(s: &str) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(digest::digest(&digest::SHA256, s.as_bytes()).as_ref());
    out
}

/// The admin plane's tokens; both `None`: everything open (loopback only, or
/// `allow_open_writes`).
#[derive(Clone, Default)]
pub struct Tokens {
    pub write: Option<Token>,
    pub read: Option<Token>,
}

impl Tokens {
    /// The tokens `admin` names (the files were checked by the config decoder).
    pub fn load(admin: &ballast_config::AdminConfig) -> Result<Tokens, String> {
        let load = |key: &str, p: &Option<std::path::PathBuf>| {
            p.as_deref()
                .map(|p| Token::load(p).map_err(|e| format!("admin.{key} {}: {e}", p.display())))
                .transpose()
        };
        Ok(Tokens {
            write: load("token_file", &admin.token_file)?,
            read: load("read_token_file", &admin.read_token_file)?,
        })
    }

    /// Only a write token: reads open, writes locked (the tests' usual setup).
    pub fn write_only(token: &str) -> Tokens {
        Tokens {
            write: Some(Token::new(token)),
            read: None,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Level {
    None,
    Read,
    Write,
}

/// What a request presented: its level and the id the audit trail shows.
struct Presented {
    level: Level,
    id: String,
}

fn presented(parts: &Parts, tokens: &Tokens) -> Presented {
    let Some(value) = parts.headers.get(header::AUTHORIZATION) else {
        return Presented {
            level: Level::None,
            id: "none".into(),
        };
    };
    let bearer = value
        .to_str()
        .ok()
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .unwrap_or("");
    let digest = sha256(bearer);
    // Both compared, always: the time taken does not say which one matched.
    let write = tokens.write.as_ref().is_some_and(|t| t.matches(&digest));
    let read = tokens.read.as_ref().is_some_and(|t| t.matches(&digest));
    let (level, id) = match (write, read) {
        (true, _) => (Level::Write, "write".to_string()),
        (_, true) => (Level::Read, "read".to_string()),
        _ => {
            let hex: String = digest[..4].iter().map(|b| format!("{b:02x}")).collect();
            (Level::None, format!("sha256:{hex}"))
        }
    };
    Presented { level, id }
}

/// The client's address, when the request came over a socket.
pub(crate) fn client(parts: &Parts) -> Option<SocketAddr> {
    parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0)
}

/// Proof that a request may write, and who it is, for the audit trail.
pub struct WriteAccess {
    pub origin: Origin,
}

impl FromRequestParts<AdminState> for WriteAccess {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AdminState,
    ) -> Result<Self, Self::Rejection> {
        let who = presented(parts, &state.tokens);
        let origin = Origin {
            client: client(parts),
            token: who.id,
            action: format!("{} {}", parts.method, parts.uri.path()),
        };
        if state.tokens.write.is_none() || who.level == Level::Write {
            return Ok(WriteAccess { origin });
        }
        let error = "this call changes the configuration: send Authorization: Bearer <token> (admin.token_file)";
        state.control.refused(origin, error).await;
        Err(ApiError::new(StatusCode::UNAUTHORIZED, error))
    }
}

/// Proof that a request may read the admin plane's state.
pub struct ReadAccess;

impl FromRequestParts<AdminState> for ReadAccess {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AdminState,
    ) -> Result<Self, Self::Rejection> {
        if state.tokens.read.is_none() || presented(parts, &state.tokens).level != Level::None {
            Ok(ReadAccess)
        } else {
            Err(read_refused())
        }
    }
}

/// Proof that a request may scrape `/metrics`: a read, or any loopback client.
pub struct MetricsAccess;

impl FromRequestParts<AdminState> for MetricsAccess {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AdminState,
    ) -> Result<Self, Self::Rejection> {
        let local = client(parts).is_some_and(|a| a.ip().to_canonical().is_loopback());
        if local
            || state.tokens.read.is_none()
            || presented(parts, &state.tokens).level != Level::None
        {
            Ok(MetricsAccess)
        } else {
            Err(read_refused())
        }
    }
}

fn read_refused() -> ApiError {
    ApiError::new(
        StatusCode::UNAUTHORIZED,
        "reading the admin plane needs Authorization: Bearer <token> (admin.read_token_file, or the write token)",
    )
}
