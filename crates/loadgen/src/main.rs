//! `ballast-loadgen`: the load generator on its own, the same as `ballast bench`, for
//! benchmarking it without building the whole load balancer (see
//! `bench/loadgen_vs_wrk.sh`).

use std::process::ExitCode;

fn main() -> ExitCode {
    let args = ballast_loadgen::BenchArgs::parse_env();
    match ballast_loadgen::run(args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
