//! The permission table for the main user, a read/write user and a read-only user.

mod common;

use common::{Connect, TestServer, Transport, ADMIN, RO, RW};

const DENIED: &str = "OVERHEAD E permission_denied";

async fn permissions(t: Transport) {
    let server = TestServer::start().await;
    let mut admin = server.login(t, ADMIN).await;
    let mut rw = server.login(t, RW).await;
    let mut ro = server.login(t, RO).await;

    // Read-only: reads work, every write and manage command is refused, in order.
    admin.send("STORE perm::test=1").await;
    admin.expect_nothing().await;
    ro.send("RETRIEVE perm::test").await;
    ro.expect("RETRIEVED perm::test=1").await;
    ro.send("KEYLIST").await;
    ro.expect("KEYLISTSTART").await;
    ro.expect("KEY perm::test").await;
    ro.expect("KEYLISTEND").await;
    ro.send("LISTEN chan").await;
    ro.send("UNLISTEN chan").await;
    for cmd in [
        "STORE perm::test=2",
        "SETANDSTORE perm::test=3",
        "REMOVE perm::test",
        "INCREMENT perm::test",
        "DECREMENT perm::test",
        "SET chan=x",
        "NOTIFY chan",
        "OVERHEAD GM hello",
        "CLEARCACHE",
        "MONITOR",
        "UNMONITOR",
        "CLIENTLIST",
        "CLIENTDISCONNECT x",
        "OVERHEAD C 1",
        "OVERHEAD S 1",
        "STATS",
        "KEYSYNC 1 1 U perm::test=4",
        "QSEND jobs=1",
        "QRECV jobs 0",
        "QACK jobs 1",
        "QNACK jobs 1",
        "QCANCEL jobs",
        "QTEMP",
        "QPURGE jobs",
        "QDELETE jobs",
    ] {
        ro.send(cmd).await;
        ro.expect(DENIED).await;
    }
    ro.send("QSTAT jobs").await;
    ro.expect_prefix("QSTATS jobs messages=0;").await;
    ro.send("QLIST").await;
    ro.expect("QLISTSTART").await;
    ro.expect("QLISTEND").await;
    ro.send("PING").await;
    ro.send("NOPING").await;
    ro.expect_nothing().await;
    admin.send("RETRIEVE perm::test").await;
    admin.expect("RETRIEVED perm::test=1").await;

    // Read/write: writes work, manage and interclacks do not.
    rw.send("STORE perm::test=5").await;
    rw.send("INCREMENT perm::test").await;
    rw.send("RETRIEVE perm::test").await;
    rw.expect("RETRIEVED perm::test=6").await;
    for cmd in [
        "CLEARCACHE",
        "MONITOR",
        "CLIENTLIST",
        "CLIENTDISCONNECT x",
        "OVERHEAD C 1",
        "OVERHEAD S 1",
        "KEYSYNC 1 1 U perm::test=4",
        "QPURGE jobs",
        "QDELETE jobs",
    ] {
        rw.send(cmd).await;
        rw.expect(DENIED).await;
    }
    rw.send("QSEND jobs=1").await;
    rw.send("QRECV jobs 0").await;
    rw.expect_prefix("QMESSAGE jobs ").await;
    rw.send("QTEMP").await;
    rw.expect_prefix("QTEMPNAME Temp::").await;

    // Main user: everything, including KEYSYNC (newest cachetime wins).
    admin.send("KEYSYNC 1 1 U perm::test=old").await;
    admin
        .send("KEYSYNC 99999999999 99999999999 U perm::new=fromsync")
        .await;
    admin.send("RETRIEVE perm::test").await;
    admin.expect("RETRIEVED perm::test=6").await;
    admin.send("RETRIEVE perm::new").await;
    admin.expect("RETRIEVED perm::new=fromsync").await;
    admin.send("CLEARCACHE").await;
    admin.send("KEYLIST").await;
    admin.expect("KEYLISTSTART").await;
    admin.expect("KEYLISTEND").await;
}

#[tokio::test]
async fn permissions_over_tls() {
    permissions(Transport::Tls).await;
}

#[tokio::test]
async fn permissions_over_unix_socket() {
    permissions(Transport::Unix).await;
}

#[tokio::test]
async fn write_only_user_cannot_read() {
    let server = TestServer::start_with(|c| {
        c.users.push(clacks_server::config::User {
            username: "wo".into(),
            password: "wo".into(),
            read: false,
            write: true,
            manage: false,
        })
    })
    .await;
    let mut wo = server.login(Transport::Unix, ("wo", "wo")).await;
    wo.send("STORE k=v").await;
    wo.send("RETRIEVE k").await;
    wo.expect(DENIED).await;
    wo.send("LISTEN k").await;
    wo.expect(DENIED).await;
}
