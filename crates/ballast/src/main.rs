//! The `ballast` binary: command-line parsing and process lifecycle (SPEC §1).
//!
//! Control path only. Each subcommand lives in its own module; this file parses the
//! command line, sets up logging and hands over.
// Two isolated exceptions: setting the allocator's options (`alloc.rs`) and
// owning descriptors handed over at a binary upgrade (`upgrade.rs`).
#![deny(unsafe_code)]

mod alloc;
mod cluster_cli;
mod demo;
mod export;
mod serve;
mod upgrade;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "ballast",
    version = env!("BALLAST_VERSION"),
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
        /// The file always wins: at start and at every SIGHUP, even over changes
        /// the admin API persisted in `state.dir` since the file was last applied
        /// (which otherwise win while the file is unchanged). What it drops is kept
        /// in `state.dir/history/`.
        #[arg(long)]
        config_wins: bool,
        /// Data-path threads, one event loop each (default: the cores this process
        /// may run on, as `taskset` or the cgroup allows).
        #[arg(long)]
        workers: Option<std::num::NonZeroUsize>,
    },
    /// Validate a config file: print every error, exit 0 if valid and 1 if not.
    Check {
        /// The config file to check (relative paths inside it are read from its
        /// directory).
        #[arg(long, short, default_value = "ballast.toml")]
        config: PathBuf,
    },
    /// Start three demo backends (one misbehaves now and then) and a balancer over
    /// them on 127.0.0.1:8080, with the admin API and dashboard on 127.0.0.1:9900;
    /// every request is logged to stdout, one short line each.
    Demo {
        /// Where the balancer listens (port 0: any free port, logged at start).
        #[arg(long, default_value = "127.0.0.1:8080")]
        bind: std::net::SocketAddr,
        /// Where the admin API and dashboard listen (port 0: any free port).
        #[arg(long, default_value = "127.0.0.1:9900")]
        admin: std::net::SocketAddr,
        /// Send light traffic of our own through the balancer, RATE requests a
        /// second (1 to 1000; 20 when given without a value), until the demo stops.
        #[arg(long, value_name = "RATE", num_args = 0..=1, default_missing_value = "20",
              value_parser = clap::value_parser!(u32).range(1..=1000))]
        traffic: Option<u32>,
    },
    /// A test and demo backend: answers with a JSON echo of each request.
    Backend {
        /// The address to listen on, e.g. 127.0.0.1:9001.
        #[arg(long)]
        bind: std::net::SocketAddr,
        /// Its name, sent back in the `x-backend` header and the echo's `backend`.
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
    /// Work with configs kept in a state directory (`ballast config export`).
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Move a fleet's config out of etcd and into it (cluster mode).
    #[command(subcommand)]
    Cluster(ClusterCommand),
}

/// Where etcd is, for `ballast cluster`.
#[derive(clap::Args)]
struct EtcdArgs {
    /// A node's config file, whose `[cluster]` says where etcd is (endpoints,
    /// prefix, TLS, auth).
    #[arg(long, short, default_value = "ballast.toml")]
    config: PathBuf,
    /// etcd's URL instead of a node's file, e.g. http://127.0.0.1:2379.
    #[arg(long)]
    etcd: Option<String>,
    /// The fleet's prefix in etcd (default: the node file's, or /ballast/).
    #[arg(long)]
    prefix: Option<String>,
}

#[derive(Subcommand)]
enum ClusterCommand {
    /// Print the fleet's config in etcd as a TOML file (no node's own tables).
    Export {
        #[command(flatten)]
        etcd: EtcdArgs,
    },
    /// Validate a config file and write it as the fleet's config in etcd.
    ///
    /// One compare-and-swap: on --revision (as an export's header says) or on
    /// the revision read just before writing; a change made in between is never
    /// overwritten (exit 1, naming the current revision).
    Import {
        /// The config file to write (checked as `ballast check` does).
        file: PathBuf,
        /// Write only if the fleet's config is still at this revision (0: only
        /// if there is none).
        #[arg(long)]
        revision: Option<i64>,
        #[command(flatten)]
        etcd: EtcdArgs,
    },
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Print a config kept in a state directory as a TOML file.
    ///
    /// The config the admin API persisted in a state directory, or a version the
    /// file dropped (kept in its history), as a TOML file that `ballast check` and
    /// `ballast serve` accept. The running config of a live ballast is
    /// `GET /api/v1/config?format=toml` on its admin address.
    Export {
        /// The state directory (the config file's `state.dir`, by default
        /// `./ballast-state`).
        #[arg(long, default_value = "ballast-state")]
        state_dir: PathBuf,
        /// Export dropped version N from `<state-dir>/history/N.json` instead of
        /// the persisted config (the WARN that dropped it names N).
        #[arg(long, value_name = "N")]
        history: Option<u64>,
    },
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
        Command::Config(ConfigCommand::Export { state_dir, history }) => {
            match export::run(&state_dir, history) {
                Ok(text) => {
                    print!("{text}");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("ballast config export: {e:#}");
                    ExitCode::from(1)
                }
            }
        }
        Command::Cluster(command) => cluster(command),
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
                    Command::Demo {
                        bind,
                        admin,
                        traffic,
                    } => demo::run(bind, admin, traffic).await,
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
                    Command::Bench(_)
                    | Command::Check { .. }
                    | Command::Config(_)
                    | Command::Cluster(_) => {
                        unreachable!("handled above")
                    }
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

/// `ballast cluster export|import`: exit 0 with the result on stdout, or 1.
fn cluster(command: ClusterCommand) -> ExitCode {
    let rt = match runtime(false) {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("ballast: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let (what, result) = rt.block_on(async {
        match &command {
            ClusterCommand::Export { etcd } => {
                let target = target(etcd);
                ("export", cluster_cli::export(&target).await)
            }
            ClusterCommand::Import {
                file,
                revision,
                etcd,
            } => {
                let target = target(etcd);
                (
                    "import",
                    cluster_cli::import(&target, file, *revision).await,
                )
            }
        }
    });
    match result {
        Ok(text) => {
            println!("{}", text.trim_end());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("ballast cluster {what}: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn target(args: &EtcdArgs) -> cluster_cli::Target<'_> {
    cluster_cli::Target {
        config: &args.config,
        etcd: args.etcd.clone(),
        prefix: args.prefix.clone(),
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    /// Every flag and argument of every subcommand says what it is for in `--help`.
    #[test]
    fn every_argument_has_help() {
        fn walk(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
            for arg in cmd.get_arguments() {
                let id = arg.get_id().as_str();
                if id == "help" || id == "version" {
                    continue;
                }
                if arg.get_help().is_none() && arg.get_long_help().is_none() {
                    missing.push(format!("{path} {id}"));
                }
            }
            for sub in cmd.get_subcommands() {
                if sub.get_about().is_none() && sub.get_name() != "help" {
                    missing.push(format!("{path} {} (the subcommand)", sub.get_name()));
                }
                walk(sub, &format!("{path} {}", sub.get_name()), missing);
            }
        }
        let cmd = super::Cli::command();
        cmd.clone().debug_assert();
        let mut missing = Vec::new();
        walk(&cmd, "ballast", &mut missing);
        assert!(missing.is_empty(), "arguments without help: {missing:?}");
    }

    #[test]
    fn version_names_the_program_and_its_version() {
        let version = super::Cli::command().render_version();
        let expected = format!("ballast {}", env!("CARGO_PKG_VERSION"));
        assert!(version.trim().starts_with(&expected), "{version}");
    }
}
