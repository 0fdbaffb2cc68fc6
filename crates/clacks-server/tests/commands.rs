//! Every client command and reply text, over TLS and over a Unix socket.

mod common;

use common::{Connect, TestServer, Transport, ADMIN};

async fn every_command(t: Transport) {
    let server = TestServer::start().await;
    let mut c = server.login(t, ADMIN).await;

    // Cache.
    c.send("STORE t1::greeting=hello world").await;
    c.send("RETRIEVE t1::greeting").await;
    c.expect("RETRIEVED t1::greeting=hello world").await;
    c.send("RETRIEVE t1::missing").await;
    c.expect("NOTRETRIEVED t1::missing").await;
    c.send("STORE t1::eq=a=b=c").await;
    c.send("RETRIEVE t1::eq").await;
    c.expect("RETRIEVED t1::eq=a=b=c").await;
    c.send("STORE t1::empty=").await;
    c.send("RETRIEVE t1::empty").await;
    c.expect("RETRIEVED t1::empty=").await;
    for line in [
        "INCREMENT t1::counter",
        "INCREMENT t1::counter=5",
        "DECREMENT t1::counter=2",
        "DECREMENT t1::counter",
    ] {
        c.send(line).await;
    }
    c.send("RETRIEVE t1::counter").await;
    c.expect("RETRIEVED t1::counter=3").await;
    c.send("STORE t1::text=abc").await;
    c.send("INCREMENT t1::text").await;
    c.send("RETRIEVE t1::text").await;
    c.expect("RETRIEVED t1::text=1").await;
    c.send("STORE t1::f=1.5").await;
    c.send("INCREMENT t1::f=1.25").await;
    c.send("RETRIEVE t1::f").await;
    c.expect("RETRIEVED t1::f=2.75").await;
    c.send("STORE t1::big=9223372036854775807").await;
    c.send("INCREMENT t1::big").await;
    c.send("RETRIEVE t1::big").await;
    c.expect("RETRIEVED t1::big=9223372036854775808").await;
    c.send("STORE t1::e=1e3").await;
    c.send("DECREMENT t1::e").await;
    c.send("RETRIEVE t1::e").await;
    c.expect("RETRIEVED t1::e=999").await;
    c.send("INCREMENT t1::odd=").await;
    c.send("RETRIEVE t1::odd=").await;
    c.expect("RETRIEVED t1::odd==1").await;
    c.send("REMOVE t1::greeting").await;
    c.send("RETRIEVE t1::greeting").await;
    c.expect("NOTRETRIEVED t1::greeting").await;
    c.send("KEYLISTJUNK").await;
    c.expect("KEYLISTSTART").await;
    for key in [
        "t1::big",
        "t1::counter",
        "t1::e",
        "t1::empty",
        "t1::eq",
        "t1::f",
        "t1::greeting",
        "t1::odd=",
        "t1::text",
    ] {
        c.expect(&format!("KEY {key}")).await;
    }
    c.expect("KEYLISTEND").await;
    c.send("CLEARCACHE").await;
    c.send("KEYLIST").await;
    c.expect("KEYLISTSTART").await;
    c.expect("KEYLISTEND").await;

    // Framing: bare LF, CR in the middle, blank lines, a line split over writes.
    c.send_raw(b"STORE sp=x\ry\n\r\n\nRETR").await;
    c.send_raw(b"IEVE sp\n").await;
    c.expect("RETRIEVED sp=xy").await;

    // Errors and prefixes.
    c.send("BOGUSCOMMAND with args").await;
    c.expect("OVERHEAD E unknown_command BOGUSCOMMAND with args")
        .await;
    for bad in [
        "retrieve x",
        "STORE noequals",
        "RETRIEVE",
        "SET x",
        "TIMEOUT",
        "NOP",
        "OVERHEAD",
    ] {
        c.send(bad).await;
        c.expect(&format!("OVERHEAD E unknown_command {bad}")).await;
    }
    c.send("OVERHEAD X").await;
    c.send("PINGPONG").await;
    c.send("NOPING").await;
    c.send("PING").await;
    c.expect_nothing().await;

    // SETANDSTORE, SET and NOTIFY without listeners: no reply.
    c.send("SETANDSTORE s=v").await;
    c.send("SET nobody=hears").await;
    c.send("NOTIFY nobody").await;
    c.send("RETRIEVE s").await;
    c.expect("RETRIEVED s=v").await;

    // CLIENTLIST lists this connection with every field.
    c.send("CLIENTLIST").await;
    c.expect("CLIENTLISTSTART").await;
    let entry = c.expect_prefix("CLIENT CID=").await;
    for field in [
        "HOST=",
        "PORT=",
        "CLIENTINFO=test-admin;",
        "OUTBUFFER_LENGTH=",
        "INBUFFER_LENGTH=0;",
        "INTERCLACKS=0;",
        "MONITOR=0;",
        "LASTPING=",
        "LASTINTERCLACKSPING=0;",
        "WRITEFAILTIME=0;",
    ] {
        assert!(entry.contains(field), "{field} missing in {entry}");
    }
    match t {
        Transport::Tls => assert!(entry.starts_with("CLIENT CID=127.0.0.1:"), "{entry}"),
        Transport::Unix => assert!(entry.contains("HOST=unixdomainsocket;"), "{entry}"),
    }
    // The CID is `<HOST>:<PORT>`.
    let field = |name: &str| {
        let start = entry.find(&format!("{name}=")).expect(name) + name.len() + 1;
        entry[start..].split(';').next().unwrap().to_string()
    };
    assert_eq!(
        field("CID"),
        format!("{}:{}", field("HOST"), field("PORT")),
        "{entry}"
    );
    c.expect("CLIENTLISTEND").await;

    // STATS (extension).
    c.send("STATS").await;
    c.expect("STATSSTART").await;
    let mut stats = Vec::new();
    loop {
        let l = c.line().await.unwrap();
        if l == "STATSEND" {
            break;
        }
        stats.push(l);
    }
    assert!(
        stats
            .iter()
            .any(|l| l.starts_with("STAT unknown_commands=")),
        "{stats:?}"
    );

    // Replies come in command order, FLUSH is answered in place, QUIT closes.
    c.send_raw(b"RETRIEVE s\r\nFLUSH f1\r\nBAD\r\nFLUSH f2\r\nQUIT\r\n")
        .await;
    c.expect("RETRIEVED s=v").await;
    c.expect("FLUSHED f1").await;
    c.expect("OVERHEAD E unknown_command BAD").await;
    c.expect("FLUSHED f2").await;
    c.expect_closed().await;
}

#[tokio::test]
async fn every_command_over_tls() {
    every_command(Transport::Tls).await;
}

#[tokio::test]
async fn every_command_over_unix_socket() {
    every_command(Transport::Unix).await;
}

async fn pipelined_login(t: Transport) {
    let server = TestServer::start().await;
    let mut c = server.connect(t).await;
    let tok = common::token(ADMIN.0, ADMIN.1);
    c.send_raw(
        format!(
            "STORE early=1\r\nCLACKS x\r\nOVERHEAD A {tok}\r\nFOO\r\nRETRIEVE early\r\nFLUSH f\r\n"
        )
        .as_bytes(),
    )
    .await;
    c.expect_prefix("CLACKS ").await;
    c.expect("OVERHEAD M Authentication required").await;
    c.expect("OVERHEAD O Welcome!").await;
    c.expect("OVERHEAD E unknown_command FOO").await;
    c.expect("NOTRETRIEVED early").await;
    c.expect("FLUSHED f").await;
}

#[tokio::test]
async fn lines_before_login_are_dropped_and_replies_keep_order_tls() {
    pipelined_login(Transport::Tls).await;
}

#[tokio::test]
async fn lines_before_login_are_dropped_and_replies_keep_order_unix() {
    pipelined_login(Transport::Unix).await;
}

#[tokio::test]
async fn login_also_accepts_base64_of_user_colon_password() {
    use base64::Engine as _;
    let server = TestServer::start().await;
    let mut c = server.connect(Transport::Unix).await;
    c.expect_prefix("CLACKS ").await;
    c.expect("OVERHEAD M Authentication required").await;
    let tok = base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", ADMIN.0, ADMIN.1));
    c.send(&format!("OVERHEAD A {tok}")).await;
    c.expect("OVERHEAD O Welcome!").await;
}

async fn failed_login(t: Transport) {
    let server = TestServer::start().await;
    let mut c = server.connect(t).await;
    c.expect_prefix("CLACKS ").await;
    c.expect("OVERHEAD M Authentication required").await;
    c.send(&format!("OVERHEAD A {}", common::token("admin", "wrong")))
        .await;
    c.send("KEYLIST").await;
    c.expect("OVERHEAD F Login failed!").await;
    c.expect_closed().await;
    // The server goes on.
    let mut ok = server.login(t, ADMIN).await;
    ok.expect_nothing().await;
}

#[tokio::test]
async fn failed_login_closes_tls() {
    failed_login(Transport::Tls).await;
}

#[tokio::test]
async fn failed_login_closes_unix() {
    failed_login(Transport::Unix).await;
}
