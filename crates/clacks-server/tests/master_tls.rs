//! The slave's TLS link checks its master's certificate when told to (`<master><cafile>` or
//! `<master><pin>`): a master that fails the check never sees the login token, and the slave
//! keeps retrying; the right certificate links and syncs.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use clacks_client::TlsVerify;
use clacks_server::config::Master;
use common::{eventually, link_count, value, Connect, TestServer, Transport, ADMIN, WAIT};

/// A slave of `master` over TLS, checking the certificate with `verify`.
async fn tls_slave(master: &TestServer, verify: TlsVerify) -> TestServer {
    let port = master.addr.port();
    TestServer::start_with(move |c| {
        c.master = Some(Master::Tcp {
            ip: "127.0.0.1".into(),
            port,
        });
        c.master_verify = verify;
        c.interclacks_reconnect_timeout = Duration::from_millis(300);
    })
    .await
}

/// Asserts that the slave tries again and again and never gets in: the master counts failed
/// handshakes, lists no link and never saw a login.
async fn refused(master: &TestServer, slave: &TestServer) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while master.stat("tls_handshake_failures") < 3 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the slave did not keep retrying"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut c = master.login(Transport::Unix, ADMIN).await;
    assert_eq!(link_count(&mut c).await, 0);
    assert_eq!(master.stat("auth_failures"), 0);
    // Only this test's own logins reached the master: none came from the slave.
    c.send("STORE only=master").await;
    c.expect_nothing().await;
    let mut s = slave.login(Transport::Unix, ADMIN).await;
    assert_eq!(value(&mut s, "only").await, None);
    assert_eq!(link_count(&mut s).await, 0);
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pinned_certificate_is_required() {
    let master = TestServer::start().await;
    let other = tempfile::tempdir().unwrap();
    let (cert, _) = clacks_server::tls::self_signed().unwrap();
    let wrong = write(other.path(), "other.pem", &cert);
    let slave = tls_slave(&master, TlsVerify::Pinned(wrong)).await;
    refused(&master, &slave).await;
    drop(slave);

    let slave = tls_slave(&master, TlsVerify::Pinned(master.cert.clone())).await;
    let mut c = master.login(Transport::Unix, ADMIN).await;
    c.send("STORE pinned=ok").await;
    c.expect_nothing().await;
    eventually(&slave, "pinned", Some("ok")).await;
    assert_eq!(link_count(&mut c).await, 1);
}

/// A CA and a certificate for 127.0.0.1 it signed: `(CA PEM, cert PEM, key PEM)`.
fn ca_and_cert() -> (String, String, String) {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "clacks test CA");
    let ca = params.self_signed(&ca_key).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()])
        .unwrap()
        .signed_by(&key, &ca, &ca_key)
        .unwrap();
    (ca.pem(), cert.pem(), key.serialize_pem())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ca_file_is_required() {
    // The master's certificate is signed by a CA (TestServer reuses a cert.pem it finds).
    let dir = tempfile::tempdir().unwrap();
    let (ca, cert, key) = ca_and_cert();
    let ca_file = write(dir.path(), "ca.pem", &ca);
    write(dir.path(), "cert.pem", &cert);
    write(dir.path(), "key.pem", &key);
    let master = TestServer::start_in(dir, "127.0.0.1:0", |_| {}).await;

    let other = tempfile::tempdir().unwrap();
    let (other_ca, _, _) = ca_and_cert();
    let wrong = write(other.path(), "other-ca.pem", &other_ca);
    let slave = tls_slave(&master, TlsVerify::CaFile(wrong)).await;
    refused(&master, &slave).await;
    drop(slave);

    let slave = tls_slave(&master, TlsVerify::CaFile(ca_file)).await;
    let mut c = master.login(Transport::Unix, ADMIN).await;
    c.send("STORE ca=ok").await;
    c.expect_nothing().await;
    eventually(&slave, "ca", Some("ok")).await;
    assert_eq!(link_count(&mut c).await, 1);
}

#[test]
fn config_names_the_element_of_a_missing_file() {
    let dir = tempfile::tempdir().unwrap();
    let base = |master: &str| {
        format!("<c><username>u</username><password>p</password><socket>s</socket><master>{master}</master></c>")
    };
    let err = |master: &str| {
        clacks_server::Config::from_xml(&base(master), "h")
            .unwrap_err()
            .to_string()
    };
    let e = err("<ip>127.0.0.1</ip><port>1</port><cafile>/no/such/ca.pem</cafile>");
    assert!(
        e.contains("<master/cafile>") && e.contains("/no/such/ca.pem"),
        "{e}"
    );
    let e = err("<ip>127.0.0.1</ip><port>1</port><pin>/no/such/cert.pem</pin>");
    assert!(e.contains("<master/pin>"), "{e}");
    let pem = write(dir.path(), "c.pem", "x");
    let ok = clacks_server::Config::from_xml(
        &base(&format!(
            "<ip>127.0.0.1</ip><port>1</port><pin>{}</pin>",
            pem.display()
        )),
        "h",
    )
    .unwrap();
    assert_eq!(ok.master_verify, TlsVerify::Pinned(pem.clone()));
    let e = err(&format!(
        "<ip>127.0.0.1</ip><port>1</port><pin>{0}</pin><cafile>{0}</cafile>",
        pem.display()
    ));
    assert!(e.contains("not both"), "{e}");
}
