//! A validated run: the parsed arguments turned into what the engine needs, with the
//! files read and the request and TLS configuration built (control path, before the
//! clock starts).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;
use http::Uri;

use crate::args::BenchArgs;
use crate::request::{self, Template};
use crate::tls;

/// What ends the measurement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    After(Duration),
    Count(u64),
}

/// The default measurement when neither `-d` nor `-n` is given.
pub const DEFAULT_DURATION: Duration = Duration::from_secs(10);

/// Everything a run needs, checked.
pub struct Plan {
    pub url: Uri,
    pub connections: u32,
    /// Lanes per connection: `--streams` with `--http2`, else 1.
    pub streams: u32,
    pub http2: bool,
    pub threads: usize,
    pub stop: Stop,
    pub warmup: Duration,
    pub rate: Option<f64>,
    pub timeout: Duration,
    pub template: Template,
    /// The encoded HTTP/1.1 request (empty with `--http2`).
    pub raw: Bytes,
    pub tls: Option<Arc<rustls::ClientConfig>>,
    pub json: bool,
    pub plot: Option<PathBuf>,
    /// `--connect-to HOST:PORT`: where connections go instead of the URL's host.
    pub connect_to: Option<String>,
}

impl Plan {
    pub fn new(args: &BenchArgs) -> anyhow::Result<Self> {
        let body = match &args.body {
            None => Bytes::new(),
            Some(path) => Bytes::from(
                std::fs::read(path)
                    .with_context(|| format!("cannot read --body {}", path.display()))?,
            ),
        };
        let template = request::template(
            &args.url,
            &args.method,
            &args.headers,
            body.clone(),
            args.http2,
        )
        .context("cannot build the request")?;
        let raw = if args.http2 {
            Bytes::new()
        } else {
            request::raw(&args.url, &args.method, &args.headers, body)
                .context("cannot build the request")?
        };
        let tls = match args.url.scheme_str() {
            Some("https") => Some(tls::client_config(
                args.insecure,
                args.cacert.as_deref(),
                args.http2,
            )?),
            _ => None,
        };
        let stop = match (args.duration, args.requests) {
            (_, Some(n)) => Stop::Count(n),
            (Some(d), None) => Stop::After(d),
            (None, None) => Stop::After(DEFAULT_DURATION),
        };
        let threads = match args.threads {
            Some(n) => n as usize,
            None => std::thread::available_parallelism().map_or(1, |n| n.get()),
        };
        Ok(Self {
            url: args.url.clone(),
            connections: args.connections,
            streams: if args.http2 { args.streams } else { 1 },
            http2: args.http2,
            threads,
            stop,
            warmup: args.warmup,
            rate: args.rate,
            timeout: args.timeout,
            template,
            raw,
            tls,
            json: args.json,
            plot: args.plot.clone(),
            connect_to: args.connect_to.clone(),
        })
    }

    /// One line saying what the run does, e.g.
    /// `50 connections, HTTP/1.1, 2 threads, closed loop, 10s`.
    pub fn describe(&self) -> String {
        let protocol = if self.http2 {
            format!("HTTP/2 × {}", count(u64::from(self.streams), "stream"))
        } else {
            "HTTP/1.1".to_owned()
        };
        let pace = match self.rate {
            Some(rate) => format!("open loop at {rate} req/s"),
            None => "closed loop".to_owned(),
        };
        let stop = match self.stop {
            Stop::After(d) => format!("{:?}", d),
            Stop::Count(n) => count(n, "request"),
        };
        let warmup = if self.warmup.is_zero() {
            String::new()
        } else {
            format!(" after {:?} warm-up", self.warmup)
        };
        let via = match &self.connect_to {
            Some(to) => format!(" via {to}"),
            None => String::new(),
        };
        format!(
            "{}, {protocol}, {}, {pace}, {stop}{warmup}{via}",
            count(u64::from(self.connections), "connection"),
            count(self.threads as u64, "thread"),
        )
    }
}

/// `1 connection`, `2 connections`.
pub fn count(n: u64, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}
