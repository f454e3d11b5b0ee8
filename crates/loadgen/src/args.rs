//! The command line of `ballast bench`, as a `clap::Args` struct the `ballast` binary
//! flattens into its `bench` subcommand.
//!
//! Everything that can be checked without touching the network is checked here, by
//! clap value parsers, so that bad input fails before a runtime or a socket exists and
//! with clap's usual one-line `error: invalid value …` message: the URL (http or https,
//! with a host), `-c 0`, a rate that is not a positive number, a duration that does not
//! parse, a header without a colon. What needs I/O (reading `--body`, `--cacert`,
//! resolving the host) is checked by [`crate::plan`].

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use http::header::{HeaderName, HeaderValue};
use http::{Method, Uri};

/// Arguments of `ballast bench URL`.
#[derive(Debug, Clone, clap::Args)]
pub struct BenchArgs {
    /// The URL to load, http:// or https://.
    #[arg(value_parser = parse_url)]
    pub url: Uri,

    /// Concurrent connections.
    #[arg(short = 'c', long, default_value_t = 50,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub connections: u32,

    /// How long to measure, e.g. 10s, 500ms, 2m (the default is 10s when -n is not given).
    #[arg(short = 'd', long, value_parser = parse_duration, conflicts_with = "requests")]
    pub duration: Option<Duration>,

    /// Total requests to measure, instead of a duration.
    #[arg(short = 'n', long, value_parser = clap::value_parser!(u64).range(1..))]
    pub requests: Option<u64>,

    /// Request method.
    #[arg(short = 'm', long, default_value = "GET", value_parser = parse_method)]
    pub method: Method,

    /// Extra request header 'Name: value' (repeatable).
    #[arg(short = 'H', long = "header", value_parser = parse_header)]
    pub headers: Vec<(HeaderName, HeaderValue)>,

    /// Send the contents of FILE as the request body.
    #[arg(long, value_name = "FILE")]
    pub body: Option<PathBuf>,

    /// Speak HTTP/2 (h2 via ALPN on https, prior knowledge on http), multiplexing
    /// --streams requests over each connection.
    #[arg(long)]
    pub http2: bool,

    /// Concurrent HTTP/2 streams per connection (with --http2).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..))]
    pub streams: u32,

    /// Accept any server certificate (https).
    #[arg(long)]
    pub insecure: bool,

    /// Trust the PEM certificates in FILE instead of the system roots (https).
    #[arg(long, value_name = "FILE")]
    pub cacert: Option<PathBuf>,

    /// Give up on a request after this long (counted as a timeout error).
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub timeout: Duration,

    /// Worker threads of the runtime (default: one per core).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    pub threads: Option<u32>,

    /// Send load for this long before measuring; those requests are not recorded.
    #[arg(long, default_value = "0s", value_parser = parse_duration_or_zero)]
    pub warmup: Duration,

    /// Open loop: send this many requests per second in total, at a constant arrival
    /// rate, and measure each latency from its scheduled start.
    #[arg(long, value_name = "RPS", value_parser = parse_rate, allow_negative_numbers = true)]
    pub rate: Option<f64>,

    /// Open every connection to HOST:PORT instead of the URL's host and port;
    /// the TLS server name (SNI, and the name the certificate must carry) and
    /// the Host header stay the URL's (as curl's `--connect-to ::HOST:PORT`).
    #[arg(long, value_name = "HOST:PORT", value_parser = parse_connect_to)]
    pub connect_to: Option<String>,

    /// Print one JSON document instead of the text report.
    #[arg(long)]
    pub json: bool,

    /// Draw latency and throughput over time into FILE.svg.
    #[arg(long, value_name = "FILE.svg")]
    pub plot: Option<PathBuf>,
}

/// Lets tests and the stand-alone binary parse a `BenchArgs` without a subcommand.
#[derive(Debug, Parser)]
#[command(name = "ballast-bench", about = "HTTP load generator (ballast bench)")]
struct Standalone {
    #[command(flatten)]
    args: BenchArgs,
}

impl BenchArgs {
    /// Parses `argv` (program name first) as `ballast bench` would.
    pub fn try_parse_from<I, T>(argv: I) -> Result<Self, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        Standalone::try_parse_from(argv).map(|s| s.args)
    }

    /// Parses the process arguments, exiting with clap's message on error.
    pub fn parse_env() -> Self {
        Standalone::parse().args
    }
}

fn parse_url(s: &str) -> Result<Uri, String> {
    let uri: Uri = s.parse().map_err(|e| format!("not a URL: {e}"))?;
    match uri.scheme_str() {
        Some("http") | Some("https") => {}
        Some(other) => return Err(format!("scheme {other:?} is not http or https")),
        None => return Err("the URL needs a scheme, http:// or https://".into()),
    }
    match uri.host() {
        Some(h) if !h.is_empty() => Ok(uri),
        _ => Err("the URL has no host".into()),
    }
}

/// `HOST:PORT`, `[V6]:PORT`: a port is required, the host is resolved at the start.
fn parse_connect_to(s: &str) -> Result<String, String> {
    let (host, port) = s
        .rsplit_once(':')
        .ok_or_else(|| format!("{s:?} is not HOST:PORT"))?;
    let bracketed = host.starts_with('[') && host.ends_with(']');
    if host.is_empty() || (host.contains(':') && !bracketed) {
        return Err(format!(
            "{s:?} is not HOST:PORT (an IPv6 address goes in brackets)"
        ));
    }
    match port.parse::<u16>() {
        Ok(p) if p > 0 => Ok(s.to_owned()),
        _ => Err(format!("{port:?} in {s:?} is not a port")),
    }
}

fn parse_method(s: &str) -> Result<Method, String> {
    Method::from_bytes(s.as_bytes()).map_err(|_| format!("{s:?} is not an HTTP method"))
}

fn parse_header(s: &str) -> Result<(HeaderName, HeaderValue), String> {
    let (name, value) = s
        .split_once(':')
        .ok_or_else(|| format!("{s:?} is not 'Name: value'"))?;
    let name = HeaderName::from_bytes(name.trim().as_bytes())
        .map_err(|_| format!("{:?} is not a header name", name.trim()))?;
    let value = HeaderValue::from_str(value.trim())
        .map_err(|_| format!("{:?} is not a header value", value.trim()))?;
    Ok((name, value))
}

fn parse_rate(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(r) if r.is_finite() && r > 0.0 => Ok(r),
        Ok(_) => Err("the rate must be a positive number of requests per second".into()),
        Err(_) => Err(format!("{s:?} is not a number")),
    }
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    match parse_duration_or_zero(s)? {
        d if d.is_zero() => Err("the duration must be longer than zero".into()),
        d => Ok(d),
    }
}

/// Parses `1.5s`, `500ms`, `250us`, `2m`, `1h`; a bare number means seconds.
pub(crate) fn parse_duration_or_zero(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (number, unit) = s.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("{s:?} is not a duration like 10s, 500ms or 2m"))?;
    let seconds_per_unit = match unit.trim() {
        "" | "s" => 1.0,
        "ms" => 1e-3,
        "us" | "µs" => 1e-6,
        "m" | "min" => 60.0,
        "h" => 3600.0,
        other => {
            return Err(format!(
                "unknown unit {other:?} in {s:?} (use us, ms, s, m or h)"
            ))
        }
    };
    Duration::try_from_secs_f64(value * seconds_per_unit)
        .map_err(|_| format!("{s:?} is out of range"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(argv: &[&str]) -> Result<BenchArgs, clap::Error> {
        BenchArgs::try_parse_from(std::iter::once("bench").chain(argv.iter().copied()))
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("3"), Ok(Duration::from_secs(3)));
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("-1s").is_err());
        assert!(parse_duration("10 parsecs").is_err());
        assert_eq!(parse_duration_or_zero("0s"), Ok(Duration::ZERO));
    }

    #[test]
    fn defaults_and_flags() {
        let a = parse(&["http://127.0.0.1:8080/x"]).expect("parses");
        assert_eq!(a.connections, 50);
        assert_eq!(a.duration, None);
        assert_eq!(a.method, Method::GET);
        let a = parse(&[
            "-c",
            "3",
            "-n",
            "100",
            "-m",
            "POST",
            "-H",
            "X-A: b c",
            "-H",
            "x-b:1",
            "--rate",
            "250.5",
            "--http2",
            "--streams",
            "4",
            "https://h/",
        ])
        .expect("parses");
        assert_eq!(a.connections, 3);
        assert_eq!(a.requests, Some(100));
        assert_eq!(a.method, Method::POST);
        assert_eq!(a.headers.len(), 2);
        assert_eq!(a.headers[0].1, "b c");
        assert_eq!(a.rate, Some(250.5));
        assert!(a.http2);
    }

    #[test]
    fn connect_to_takes_host_and_port() {
        for to in ["127.0.0.1:8443", "lb.internal:443", "[::1]:8443"] {
            let a = parse(&["--connect-to", to, "https://app.example/"]).expect(to);
            assert_eq!(a.connect_to.as_deref(), Some(to));
        }
        assert_eq!(
            parse(&["https://app.example/"]).expect("parses").connect_to,
            None
        );
    }

    #[test]
    fn bad_input_is_rejected_by_the_parser() {
        for argv in [
            &["-c", "0", "http://h/"][..],
            &["--rate", "0", "http://h/"],
            &["--rate", "-5", "http://h/"],
            &["--rate", "fast", "http://h/"],
            &["not a url"],
            &["ftp://h/"],
            &["/just/a/path"],
            &["-d", "10s", "-n", "5", "http://h/"],
            &["--frobnicate", "http://h/"],
            &["-H", "no colon", "http://h/"],
            &["-d", "0s", "http://h/"],
            &["--connect-to", "127.0.0.1", "https://h/"],
            &["--connect-to", "127.0.0.1:0", "https://h/"],
            &["--connect-to", ":443", "https://h/"],
            &["--connect-to", "::1:443", "https://h/"],
        ] {
            let err = parse(argv).expect_err(&format!("{argv:?} should fail"));
            let first = err.to_string();
            let first = first.lines().next().unwrap_or_default();
            assert!(first.starts_with("error:"), "{argv:?}: {first}");
        }
    }
}
