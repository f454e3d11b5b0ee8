//! Desync classification: is this HTTP/1 request one that two parsers could read
//! two ways? Every HTTP/1 request gets one class and one reason, as AWS's load
//! balancers classify them (SPEC §5): compliant, acceptable (not compliant, but no
//! known risk), ambiguous (parsers may disagree on where it ends), severe (malformed
//! or plainly hostile).
//!
//! Data path, no I/O. The classifier is AWS's own, `http_desync_guardian` (the
//! library behind ALB's and Classic ELB's desync mitigation), fed what the parser
//! already saw: method, version, request target and every header field as sent
//! (`HttpRequestData::analyze_parsed_request`), so the head is never parsed twice.
//! Two parsers feed it:
//! - ballast's own HTTP/1.1 server (`frontend/http1/request.rs`) hands over the
//!   fields as httparse read them, duplicates and spelling included, also for the
//!   heads it leaves to hyper (`Seen::Raw`);
//! - a request that hyper read by itself (TLS, or a keep-alive connection hyper
//!   went on serving) is classified from its `HeaderMap`, which is what hyper kept:
//!   hyper keeps one of several equal `Content-Length` fields and drops
//!   `Content-Length` beside `Transfer-Encoding` (closing the connection after the
//!   response), so those two requests show as the single framing that hyper and the
//!   target (which gets ballast's own framing) both use.
//!
//! What neither parser takes at all (a NUL, CR or LF in a field or the target, a
//! line fold, a field name that is not a token, a bad method or version, two
//! different lengths, a `Transfer-Encoding` whose last coding is not `chunked`) is
//! answered 400 by the parser before it could be classified, in every mode.

use http::{HeaderMap, Version};
use http_desync_guardian::request_analyzer::{HttpHeader, HttpRequestData};
use http_desync_guardian::{ClassificationReason, RequestSafetyTier};

/// The four classes, least to most dangerous.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Class {
    Compliant = 0,
    Acceptable = 1,
    Ambiguous = 2,
    Severe = 3,
}

impl Class {
    pub const ALL: [Class; 4] = [
        Class::Compliant,
        Class::Acceptable,
        Class::Ambiguous,
        Class::Severe,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Class::Compliant => "compliant",
            Class::Acceptable => "acceptable",
            Class::Ambiguous => "ambiguous",
            Class::Severe => "severe",
        }
    }
}

/// A request's class and the reason for it (the library's reasons, in snake case:
/// `both_te_cl_present`, `suspicious_header`, ...).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Verdict {
    pub class: Class,
    pub reason: &'static str,
}

impl Verdict {
    pub const COMPLIANT: Verdict = Verdict {
        class: Class::Compliant,
        reason: "compliant",
    };
}

/// The version as the request line spelled it (httparse reads 1.0 and 1.1 only).
fn version_token(version: Version) -> &'static [u8] {
    if version == Version::HTTP_10 {
        b"HTTP/1.0"
    } else {
        b"HTTP/1.1"
    }
}

/// Classify a request head from its parts. `fields` are the header fields in the
/// order read, as name and value.
pub fn classify<'a>(
    method: &'a [u8],
    version: Version,
    target: &'a [u8],
    fields: impl Iterator<Item = (&'a [u8], &'a [u8])>,
) -> Verdict {
    let mut request = HttpRequestData {
        method,
        version: version_token(version),
        uri: target,
        headers: fields.map(|(n, v)| HttpHeader::new(n, v)).collect(),
    };
    let result = request.analyze_parsed_request();
    Verdict {
        class: match result.tier {
            RequestSafetyTier::Compliant => Class::Compliant,
            RequestSafetyTier::Acceptable => Class::Acceptable,
            RequestSafetyTier::Ambiguous => Class::Ambiguous,
            RequestSafetyTier::Severe => Class::Severe,
        },
        reason: reason(result.reason),
    }
}

/// The classification of a head ballast's own server takes, exactly as `classify`
/// gives it, at a fraction of the cost (the data path's common request).
///
/// Such a head was read by httparse and has no `Content-Length`,
/// `Transfer-Encoding`, `Upgrade` or `Expect` (else it is left to hyper). Of the
/// classifier's checks, httparse has then settled every one but one: the method is
/// a token, the version 1.0 or 1.1, the target holds no byte the classifier
/// objects to (control characters, space, DEL), names are tokens and values hold
/// no control character but tab; and with no framing field there is no length to
/// doubt. What is left is a name that *resembles* a framing field
/// (`Transfer_Encoding`, `Content.Length`): the classifier compares the names'
/// letters, and a name can resemble one only if it is at least as long and its
/// first letter or digit is that field's first letter. Heads with no such name
/// (nearly all: `Host`, `User-Agent`, `Accept-Encoding`...) are compliant without
/// running the classifier; the others run it. The equivalence is tested against
/// the classifier on a corpus (`tests::the_shortcut_agrees_with_the_classifier`).
pub fn classify_taken<'a>(
    method: &'a [u8],
    version: Version,
    target: &'a [u8],
    fields: impl Iterator<Item = (&'a [u8], &'a [u8])> + Clone,
) -> Verdict {
    if !fields.clone().any(|(name, _)| may_resemble_framing(name)) {
        return Verdict::COMPLIANT;
    }
    classify(method, version, target, fields)
}

/// Whether the classifier could find `name` similar to `Transfer-Encoding` or
/// `Content-Length` (its `determine_similarity`: shorter names are distant, and
/// the first letter or digit must match).
fn may_resemble_framing(name: &[u8]) -> bool {
    const TE: usize = "transfer-encoding".len();
    const CL: usize = "content-length".len();
    if name.len() < CL {
        return false;
    }
    match name.iter().find(|b| b.is_ascii_alphanumeric()) {
        Some(b'c' | b'C') => true,
        Some(b't' | b'T') => name.len() >= TE,
        // Non-ASCII letters the classifier reads as look-alikes (`ſ`, `ı`) are
        // not in names httparse takes; be safe anyway.
        Some(_) => false,
        None => !name.is_ascii(),
    }
}

/// Classify a request as hyper handed it over (see the module docs for what hyper
/// has already settled).
pub fn classify_parsed(
    method: &http::Method,
    version: Version,
    target: &[u8],
    headers: &HeaderMap,
) -> Verdict {
    let fields = headers
        .iter()
        .map(|(n, v)| (n.as_str().as_bytes(), v.as_bytes()));
    classify(method.as_str().as_bytes(), version, target, fields)
}

fn reason(r: ClassificationReason) -> &'static str {
    use ClassificationReason as R;
    match r {
        R::Compliant => "compliant",
        R::EmptyHeader => "empty_header",
        R::SuspiciousHeader => "suspicious_header",
        R::NonCompliantHeader => "non_compliant_header",
        R::BadHeader => "bad_header",
        R::AmbiguousUri => "ambiguous_uri",
        R::SpaceInUri => "space_in_uri",
        R::BadUri => "bad_uri",
        R::NonCompliantVersion => "non_compliant_version",
        R::BadVersion => "bad_version",
        R::GetHeadZeroContentLength => "get_head_zero_content_length",
        R::UndefinedContentLengthSemantics => "undefined_content_length_semantics",
        R::MultipleContentLength => "multiple_content_length",
        R::DuplicateContentLength => "duplicate_content_length",
        R::BadContentLength => "bad_content_length",
        R::UndefinedTransferEncodingSemantics => "undefined_transfer_encoding_semantics",
        R::MultipleTransferEncodingChunked => "multiple_transfer_encoding_chunked",
        R::BadTransferEncoding => "bad_transfer_encoding",
        R::BothTeClPresent => "both_te_cl_present",
        R::BadMethod => "bad_method",
        R::NonCrLfLineTermination => "non_crlf_line_termination",
        R::MultilineHeader => "multiline_header",
        R::PartialHeaderLine => "partial_header_line",
        R::MissingLastEmptyLine => "missing_last_empty_line",
        R::MissingHeaderColon => "missing_header_colon",
        R::MissingUri => "missing_uri",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(method: &str, target: &str, fields: &[(&str, &str)]) -> Verdict {
        classify(
            method.as_bytes(),
            Version::HTTP_11,
            target.as_bytes(),
            fields.iter().map(|(n, v)| (n.as_bytes(), v.as_bytes())),
        )
    }

    #[test]
    fn classes_and_reasons() {
        let host = ("Host", "a.example");
        assert_eq!(raw("GET", "/", &[host]), Verdict::COMPLIANT);
        type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], Class, &'a str);
        let cases: &[Case<'_>] = &[
            (
                "GET",
                &[host, ("Content-Length", "0")],
                Class::Acceptable,
                "get_head_zero_content_length",
            ),
            (
                "GET",
                &[host, ("Content-Length", "5")],
                Class::Ambiguous,
                "undefined_content_length_semantics",
            ),
            (
                "POST",
                &[
                    host,
                    ("Content-Length", "5"),
                    ("Transfer-Encoding", "chunked"),
                ],
                Class::Ambiguous,
                "both_te_cl_present",
            ),
            (
                "POST",
                &[host, ("Content-Length", "5"), ("Content-Length", "5")],
                Class::Ambiguous,
                "duplicate_content_length",
            ),
            (
                "POST",
                &[host, ("Content-Length", "5"), ("Content-Length", "6")],
                Class::Severe,
                "multiple_content_length",
            ),
            (
                "POST",
                &[host, ("Transfer_Encoding", "chunked")],
                Class::Ambiguous,
                "suspicious_header",
            ),
            (
                "POST",
                &[host, ("Transfer-Encoding", "xchunked")],
                Class::Severe,
                "bad_transfer_encoding",
            ),
            (
                "POST",
                &[host, ("Transfer-Encoding", "chunked, chunked")],
                Class::Severe,
                "multiple_transfer_encoding_chunked",
            ),
            (
                "HEAD",
                &[host, ("Transfer-Encoding", "chunked")],
                Class::Ambiguous,
                "undefined_transfer_encoding_semantics",
            ),
            (
                "GET",
                &[host, ("X-A", "b\u{1}c")],
                Class::Acceptable,
                "non_compliant_header",
            ),
            ("GET", &[host, ("", "x")], Class::Ambiguous, "empty_header"),
            ("G(T", &[host], Class::Severe, "bad_method"),
            (
                "GET",
                &[host, ("X-A", "b\u{0}c")],
                Class::Severe,
                "bad_header",
            ),
        ];
        for (method, fields, class, reason) in cases {
            let v = raw(method, "/", fields);
            assert_eq!(
                (v.class, v.reason),
                (*class, *reason),
                "{method} {fields:?}"
            );
        }
    }
}
