//! The `ballast` binary: command-line parsing and process lifecycle (SPEC §1).
//!
//! Control path only. Each subcommand lives in its own module; this file parses the
//! command line, sets up logging and hands over.
// Two isolated exceptions: setting the allocator's options (`alloc.rs`) and
// owning descriptors handed over at a binary upgrade (`upgrade.rs`).
#![deny(unsafe_code)]

mod alloc;
mod demo;
mod serve;
mod upgrade;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "ballast",
    version,
    about = "A self-hosted layer-7 HTTP load balancer"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the load balancer.
    Serve {
        /// The config file.
        #[arg(long, short, default_value = "ballast.toml")]
        config: PathBuf,
        /// Start from the file even when the admin API persisted a config in
        /// `state.dir` (which otherwise wins); the file is then persisted.
        #[arg(long)]
        config_wins: bool,
        /// Data-path threads, one event loop each (default: the cores this process
        /// may run on, as `taskset` or the cgroup allows).
        #[arg(long)]
        workers: Option<std::num::NonZeroUsize>,
    },
    /// Validate a config file: print every error, exit 0 if valid and 1 if not.
    Check {
        #[arg(long, short, default_value = "ballast.toml")]
        config: PathBuf,
    },
    /// Start three demo backends and a balancer over them on 127.0.0.1:8080, with
    /// the admin API and dashboard on 127.0.0.1:9900.
    Demo {
        /// Where the balancer listens.
        #[arg(long, default_value = "127.0.0.1:8080")]
        bind: std::net::SocketAddr,
        /// Where the admin API and dashboard listen.
        #[arg(long, default_value = "127.0.0.1:9900")]
        admin: std::net::SocketAddr,
    },
    /// A test and demo backend: answers with a JSON echo of each request.
    Backend {
        #[arg(long)]
        bind: std::net::SocketAddr,
        #[arg(long, default_value = "backend")]
        name: String,
        /// Share of requests answered with 500, from 0.0 to 1.0.
        #[arg(long, default_value_t = 0.0, value_parser = parse_rate)]
        fail_rate: f64,
        /// Delay added before every response, e.g. "50ms".
        #[arg(long, value_parser = parse_duration)]
        latency: Option<std::time::Duration>,
        /// Serve at most N requests at once (each takes --latency); the rest wait
        /// in a FIFO queue, so latency grows with load. Default: no bound.
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
        capacity: Option<u32>,
        /// A poison pill, e.g. "X-Tenant: poison": once a request carries this
        /// header value, every request is answered 500 and /healthz 503.
        #[arg(long, value_parser = ballast_backend::Poison::parse)]
        poison: Option<ballast_backend::Poison>,
    },
    /// The load generator (see `ballast bench --help`).
    Bench(Box<ballast_loadgen::BenchArgs>),
}

fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    ballast_config::duration::parse(s)
        .ok_or_else(|| format!("expected {}", ballast_config::duration::ALLOWED))
}

fn parse_rate(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(f) if (0.0..=1.0).contains(&f) => Ok(f),
        _ => Err("expected a number from 0.0 to 1.0".to_string()),
    }
}

fn init_logging() {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}

/// The main runtime. With data-path workers (`serve`, `demo`) it runs only the
/// control path, on the main thread; otherwise it is tokio's multi-thread runtime.
fn runtime(workers: bool) -> std::io::Result<tokio::runtime::Runtime> {
    if workers {
        return tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build();
    }
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// mimalloc, chosen by measurement (`alloc.rs`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    alloc::configure();
    let cli = Cli::parse();
    match cli.command {
        Command::Bench(args) => match ballast_loadgen::run(*args) {
            Ok(code) => code,
            Err(e) => {
                eprintln!("ballast bench: {e:#}");
                ExitCode::from(2)
            }
        },
        Command::Check { config } => match ballast_config::Config::load(&config) {
            Ok(_) => {
                println!("{}: valid", config.display());
                ExitCode::SUCCESS
            }
            Err(errors) => {
                for e in errors.iter() {
                    eprintln!("{}: {e}", config.display());
                }
                eprintln!("{}: {} error(s)", config.display(), errors.len());
                ExitCode::from(1)
            }
        },
        command => {
            init_logging();
            let workers = match &command {
                Command::Serve { workers, .. } => Some(workers.map_or_else(cores, |n| n.get())),
                Command::Demo { .. } => Some(cores()),
                _ => None,
            };
            if let Some(n) = workers {
                if let Err(e) = ballast_proxy::runtime::start(n, alloc::collect) {
                    eprintln!("ballast: cannot start the worker threads: {e}");
                    return ExitCode::from(1);
                }
            }
            let rt = match runtime(workers.is_some()) {
                Ok(rt) => rt,
                Err(e) => {
                    eprintln!("ballast: cannot start the runtime: {e}");
                    return ExitCode::from(1);
                }
            };
            let result = rt.block_on(async move {
                match command {
                    Command::Serve {
                        config,
                        config_wins,
                        ..
                    } => serve::run(&config, config_wins).await,
                    Command::Demo { bind, admin } => demo::run(bind, admin).await,
                    Command::Backend {
                        bind,
                        name,
                        fail_rate,
                        latency,
                        capacity,
                        poison,
                    } => {
                        let mut config = ballast_backend::BackendConfig::new(name);
                        config.fail_rate = fail_rate;
                        config.latency = latency.unwrap_or_default();
                        config.capacity = capacity.map(|n| n as usize);
                        config.poison = poison;
                        ballast_backend::run(bind, config)
                            .await
                            .map_err(anyhow::Error::from)
                    }
                    Command::Bench(_) | Command::Check { .. } => unreachable!("handled above"),
                }
            });
            match result {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("ballast: {e:#}");
                    ExitCode::from(1)
                }
            }
        }
    }
}
