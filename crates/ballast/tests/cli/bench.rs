//! `ballast bench --connect-to`: a TLS listener whose certificate names a host
//! that does not resolve, loaded by address, with the TLS server name and the
//! Host header taken from the URL (as curl's `--connect-to`).

use std::path::Path;
use std::process::Command;

use ballast_testkit::pki::{path_str, Ca, TempDir};
use ballast_testkit::{backends, BallastProcess, Setup};

use crate::BIN;

fn bench(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(BIN)
        .arg("bench")
        .args(args)
        .output()
        .expect("run bench");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_to_sends_the_urls_name_as_sni_and_host_to_another_address() {
    let bs = backends(1).await;
    let dir = TempDir::new("bench-connect-to");
    let ca = Ca::new("Bench CA");
    // The certificate is for app.test only; `.test` names never resolve.
    let cert = ca.server(&["app.test"]).toml(&dir, "app");
    let ca_file = dir.write("ca.pem", &ca.cert_pem);
    let mut setup = Setup::new(&bs);
    // Requests for Host app.test get a 203 of their own; anything else is
    // forwarded to the backend (200).
    setup.listener_extra = format!(
        "protocol = \"https\"\ncertificates = [{cert}]\n\
         [[listeners.rules]]\npriority = 1\nconditions = [{{ host = \"app.test\" }}]\n\
         action = {{ type = \"fixed_response\", status = 203, body = \"app\" }}\n"
    );
    let p = BallastProcess::spawn(Path::new(BIN), &setup.toml());
    let to = p.addr.to_string();
    let ca_arg = path_str(&ca_file);

    let (code, out, err) = tokio::task::block_in_place(|| {
        bench(&[
            "-c",
            "2",
            "-n",
            "40",
            "--threads",
            "1",
            "--cacert",
            &ca_arg,
            "--connect-to",
            &to,
            "https://app.test/",
        ])
    });
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("Status     203: 40"), "{out}");
    assert!(out.contains(&format!("via {to}")), "{out}");

    // Without it, the name is looked up, and fails before the run.
    let (code, _, err) = tokio::task::block_in_place(|| {
        bench(&["-n", "5", "--cacert", &ca_arg, "https://app.test/"])
    });
    assert_ne!(code, 0);
    assert!(err.contains("cannot resolve app.test"), "{err}");

    // The certificate is checked against the URL's name, not the address.
    let url = format!("https://{to}/");
    let (code, _, err) = tokio::task::block_in_place(|| {
        bench(&["-n", "5", "--threads", "1", "--cacert", &ca_arg, &url])
    });
    assert_ne!(code, 0, "a certificate for app.test is not one for {to}");
    assert!(err.contains("cannot connect"), "{err}");
}
