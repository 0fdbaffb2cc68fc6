//! The config reader against the reference example, its errors, lookup and substitution.

use super::*;

const EXAMPLE: &str = r#"<clacks>
    <appname>Clacks master</appname>
    <ip>127.0.0.1</ip>
    <port>49888</port>
    <socket>/tmp/a.sock</socket>
    <socket>/tmp/b.sock</socket>
    <socketchmod>0660</socketchmod>
    <ssl><cert>CERT</cert><key>KEY</key></ssl>
    <username>exampleuser</username>
    <password>unsafepassword</password>
    <user><username>rwuser</username><password>foo</password><read>1</read><write>1</write></user>
    <user><username>rouser</username><password>bar</password><read>1</read></user>
    <persistancefile>/tmp/clackspersistance.dat</persistancefile>
    <pingtimeout>600</pingtimeout>
    <throttle><maxsleep>100</maxsleep><step>10</step></throttle>
    <frobnicate>1</frobnicate>
    <hosts><otherhost><port>1</port></otherhost><thishost><pingtimeout>5</pingtimeout><socket>/tmp/host.sock</socket></thishost></hosts>
</clacks>"#;

fn with_cert(text: &str) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let cert = dir.path().join("c.pem");
    let key = dir.path().join("k.pem");
    std::fs::write(&cert, "x").unwrap();
    std::fs::write(&key, "x").unwrap();
    let text = text
        .replace("CERT", cert.to_str().unwrap())
        .replace("KEY", key.to_str().unwrap());
    (dir, text)
}

#[test]
fn reads_the_reference_example_with_host_override() {
    let (_dir, text) = with_cert(EXAMPLE);
    let c = Config::from_xml(&text, "thishost").unwrap();
    assert_eq!(c.ips, vec!["127.0.0.1"]);
    assert_eq!(c.port, Some(49888));
    assert_eq!(c.sockets, vec![PathBuf::from("/tmp/host.sock")]);
    assert_eq!(c.socketchmod, Some(0o660));
    assert_eq!(c.ping_timeout, Duration::from_secs(5));
    assert_eq!(c.users.len(), 2);
    assert!(c.users[0].write && !c.users[1].write && c.users[1].read);
    assert_eq!(
        c.persistence_file,
        Some(PathBuf::from("/tmp/clackspersistance.dat"))
    );
    assert_eq!(c.auth_timeout, Duration::from_secs(15));
    let other = Config::from_xml(&text, "nohost").unwrap();
    assert_eq!(other.sockets.len(), 2);
    assert_eq!(other.ping_timeout, Duration::from_secs(600));
}

#[test]
fn errors_name_the_element() {
    let err = |xml: &str| Config::from_xml(xml, "h").unwrap_err().to_string();
    assert!(err("<c><socket>s</socket><password>p</password></c>").contains("<username>"));
    assert!(
        err("<c><username>u</username><password>p</password><ip>1.2.3.4</ip></c>")
            .contains("<port>")
    );
    assert!(
        err("<c><username>u</username><password>p</password><ip>1</ip><port>1</port></c>")
            .contains("<ssl>")
    );
    assert!(err("<c><username>u</username><password>p</password><socket>s</socket><pingtimeout>x</pingtimeout></c>").contains("<pingtimeout>"));
    assert!(err("<c><username>u</username><password>p</password><socket>s</socket><user><password>p</password></user></c>").contains("user[1]/username"));
    assert!(
        err("<c><username>u</username>").contains("invalid XML")
            || err("<c><username>u</username>").contains("unclosed")
    );
}

#[test]
fn memcached_section() {
    let base = "<c><username>u</username><password>p</password><socket>s</socket>";
    let parse = |extra: &str| Config::from_xml(&format!("{base}{extra}</c>"), "h");
    assert_eq!(parse("").unwrap().memcached, None, "off by default");
    let m = parse("<memcached><port>11211</port></memcached>")
        .unwrap()
        .memcached
        .unwrap();
    assert_eq!(
        m,
        Memcached::on_port(11211),
        "loopback unless <ip> is given"
    );
    let m = parse("<memcached><ip>::1</ip><ip>10.0.0.1</ip><port>1</port><socket>m.sock</socket><maxitemsize>100</maxitemsize></memcached>")
        .unwrap()
        .memcached
        .unwrap();
    assert_eq!(m.ips, vec!["::1", "10.0.0.1"]);
    assert_eq!(m.sockets, vec![PathBuf::from("m.sock")]);
    assert_eq!(m.max_item_size, 100);
    let err = |extra: &str| parse(extra).unwrap_err().to_string();
    assert!(err("<memcached></memcached>").contains("<memcached>"));
    assert!(err("<memcached><ip>1.2.3.4</ip></memcached>").contains("<memcached/port>"));
    assert!(err("<memcached><port>x</port></memcached>").contains("<memcached/port>"));
    assert!(
        err("<memcached><port>1</port><maxitemsize>2000000</maxitemsize></memcached>")
            .contains("<memcached/maxitemsize>")
    );
}

/// A minimal valid config with `element` (a path like `memcached/maxitemsize`) set to
/// `value`.
fn with_element(element: &str, value: &str) -> String {
    let inner = match element.split_once('/') {
        None => format!("<{element}>{value}</{element}>"),
        Some(("memcached", e)) => format!(
            "<maxlinelength>1073741824</maxlinelength>\
             <memcached><socket>m</socket><{e}>{value}</{e}></memcached>"
        ),
        Some(("master", e)) => format!("<master><ip>10.0.0.1</ip><{e}>{value}</{e}></master>"),
        Some(("queues", e)) => format!("<queues><{e}>{value}</{e}></queues>"),
        Some(("registry", e)) => format!("<registry><{e}>{value}</{e}></registry>"),
        Some(("journal", e)) => format!(
            "<persistancefile>c.dat</persistancefile>\
             <journal><file>j</file><{e}>{value}</{e}></journal>"
        ),
        Some(("queueprefix", e)) => {
            format!("<queueprefix><prefix>p</prefix><{e}>{value}</{e}></queueprefix>")
        }
        Some(_) => unreachable!("{element}"),
    };
    format!("<c><username>u</username><password>p</password><socket>s</socket>{inner}</c>")
}

/// Every numeric element: garbage, signs, NaN, infinities, huge values and values just
/// outside the range are errors naming the element and the range; the bounds are accepted.
#[test]
fn numbers_out_of_range_are_errors_naming_the_element() {
    const GARBAGE: &[&str] = &[
        "",
        "x",
        "12abc",
        "-1",
        "NaN",
        "inf",
        "-inf",
        "1e300",
        "1.8e19",
        "18446744073709551616",
    ];
    let mut cases: Vec<(&str, Vec<String>, Vec<String>)> = Vec::new();
    for n in table::seconds() {
        let (min, max) = (n.min.as_secs_f64(), n.max.as_secs_f64());
        let mut bad = vec![format!("{}", max + 0.001)];
        if min > 0.0 {
            bad.push(format!("{}", min - 0.001));
        }
        cases.push((n.element, bad, vec![min.to_string(), max.to_string()]));
    }
    for n in table::counts() {
        let mut bad = vec![(n.max + 1).to_string(), "1.5".into()];
        bad.extend(n.min.checked_sub(1).map(|v| v.to_string()));
        cases.push((n.element, bad, vec![n.min.to_string(), n.max.to_string()]));
    }
    for r in [table::PORT, table::MASTER_PORT, table::MEMCACHED_PORT] {
        cases.push((
            r.element,
            vec!["0".into(), "65536".into()],
            vec!["1".into(), "65535".into()],
        ));
    }
    let w = table::WORKER_THREADS;
    cases.push((
        w.element,
        vec!["0".into(), "1025".into()],
        vec!["1".into(), "1024".into()],
    ));
    cases.push((
        table::SOCKETCHMOD.element,
        vec!["10000".into(), "8".into(), "-1".into()],
        vec!["0".into(), "7777".into(), "0660".into()],
    ));
    for (element, bad, good) in cases {
        let garbage = GARBAGE
            .iter()
            .filter(|g| !(element == "socketchmod" && g.is_empty()))
            .map(|g| g.to_string());
        for value in garbage.chain(bad) {
            let xml = with_element(element, &value);
            let err = Config::from_xml(&xml, "h")
                .map(|_| ())
                .expect_err(&format!("<{element}>{value:?} accepted"))
                .to_string();
            assert!(
                err.contains(&format!("<{element}>")),
                "{element} {value:?}: {err}"
            );
            assert!(
                err.contains(" from ") && err.contains(" to "),
                "{element} {value:?}: {err}"
            );
        }
        for value in good {
            let xml = with_element(element, &value);
            match Config::from_xml(&xml, "h") {
                Ok(c) => crate::fuzzing::check(&c),
                Err(e) => panic!("<{element}>{value}: {e}"),
            }
        }
    }
}

#[test]
fn bounds_are_the_values_used() {
    let c = Config::from_xml(&with_element("authtimeout", "86400"), "h").unwrap();
    assert_eq!(c.auth_timeout, table::DAY);
    let c = Config::from_xml(&with_element("socketchmod", "0660"), "h").unwrap();
    assert_eq!(c.socketchmod, Some(0o660));
    let c = Config::from_xml(&with_element("workerthreads", "1024"), "h").unwrap();
    assert_eq!(c.worker_threads, Some(1024));
    let c = Config::from_xml(&with_element("memcached/maxitemsize", "1"), "h").unwrap();
    assert_eq!(c.memcached.unwrap().max_item_size, 1);
}

#[test]
fn simulated_time_offset_is_range_checked() {
    let env = |v: &str| vec![("CLACKS_SIMULATED_TIME_OFFSET".to_string(), v.to_string())];
    assert_eq!(time_offset(&[]).unwrap(), 0.0);
    assert_eq!(time_offset(&env("")).unwrap(), 0.0);
    assert_eq!(time_offset(&env(" -3600.5 ")).unwrap(), -3600.5);
    for bad in ["x", "NaN", "inf", "1e300", "-1e10"] {
        let e = time_offset(&env(bad)).unwrap_err().to_string();
        assert!(e.contains("CLACKS_SIMULATED_TIME_OFFSET"), "{bad}: {e}");
    }
}

#[test]
fn memory_limit_sizes_and_policy() {
    let base = "<c><username>u</username><password>p</password><socket>s</socket>";
    let parse = |extra: &str| Config::from_xml(&format!("{base}{extra}</c>"), "h");
    let c = parse("").unwrap();
    assert_eq!(
        (c.max_memory, c.max_memory_policy),
        (0, MemoryPolicy::Reject),
        "unlimited without the element, as v36"
    );
    for (text, want) in [
        ("0", 0),
        ("1000", 1000),
        ("64k", 64 << 10),
        ("512M", 512 << 20),
        (" 2G ", 2 << 30),
    ] {
        let c = parse(&format!("<maxmemory>{text}</maxmemory>")).unwrap();
        assert_eq!(c.max_memory, want, "{text}");
    }
    let c = parse("<maxmemory>1G</maxmemory><maxmemorypolicy>evict</maxmemorypolicy>").unwrap();
    assert_eq!(c.max_memory_policy, MemoryPolicy::Evict);
    let err = |extra: &str| parse(extra).unwrap_err().to_string();
    for bad in [
        "",
        "G",
        "-1",
        "+5",
        "1.5G",
        "12KB",
        "1T",
        "ten",
        "99999999999999999999",
        "9999999999G",
    ] {
        let e = err(&format!("<maxmemory>{bad}</maxmemory>"));
        assert!(e.contains("<maxmemory>"), "{bad:?}: {e}");
    }
    let e = err("<maxmemorypolicy>lru</maxmemorypolicy>");
    assert!(e.contains("<maxmemorypolicy>") && e.contains("lru"), "{e}");
}

#[test]
fn lookup_uses_pc_config_paths_then_legacy_locations() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    std::fs::write(b.path().join("c.xml"), "x").unwrap();
    let paths = format!("{}:{}", a.path().display(), b.path().display());
    let env = vec![("PC_CONFIG_PATHS".to_string(), paths)];
    assert_eq!(find_config("c.xml", &env).unwrap(), b.path().join("c.xml"));
    let err = find_config("missing.xml", &env).unwrap_err().to_string();
    assert!(err.contains("missing.xml"), "{err}");
    let legacy = find_config("no-such-file.xml", &[])
        .unwrap_err()
        .to_string();
    assert!(legacy.contains("configs/no-such-file.xml"), "{legacy}");
}

#[test]
fn pc_substitution_longest_first() {
    let env = vec![
        ("PC_A".to_string(), "short".to_string()),
        ("PC_AB".to_string(), "long".to_string()),
        ("OTHER".to_string(), "x".to_string()),
    ];
    assert_eq!(
        substitute_pc_vars("PC_AB PC_A OTHER", &env),
        "long short OTHER"
    );
}

/// The element list of docs/protocol.md: one row per element of the table.
fn element_list() -> String {
    let mut out =
        String::from("| element | default | allowed | meaning |\n| --- | --- | --- | --- |\n");
    for e in table::entries() {
        let allowed = e.allowed().unwrap_or_else(|| {
            match e {
                table::Entry::Path(_) => "a path",
                table::Entry::Section(_) => "the elements below",
                table::Entry::Hosts(_) => "root elements, per host",
                table::Entry::Ignored(_) => "anything",
                _ => "text",
            }
            .to_string()
        });
        out += &format!(
            "| `{}` | {} | {} | {} |\n",
            e.element(),
            e.human_default().unwrap_or_else(|| "–".into()),
            allowed,
            code_spans(&format!("{}.", e.doc())),
        );
    }
    out
}

/// `text` with each run of `<tags>` in a code span, so Markdown shows the element names.
fn code_spans(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find('<') {
        out.push_str(&rest[..start]);
        let mut end = start;
        while rest[end..].starts_with('<') {
            match rest[end..].find('>') {
                Some(close) => end += close + 1,
                None => break,
            }
        }
        if end == start {
            out.push_str(&rest[start..]);
            return out;
        }
        out += &format!("`{}`", &rest[start..end]);
        rest = &rest[end..];
    }
    out + rest
}

/// docs/protocol.md lists every element with its default, range and doc as the table states
/// them. `CLACKS_BLESS=1` rewrites the list from the table.
#[test]
fn the_protocol_docs_list_every_element() {
    const BEGIN: &str = "<!-- config elements: generated from the element table \
                         (crates/clacks-server/src/config/table/) -->\n";
    const END: &str = "<!-- end of config elements -->";
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/protocol.md");
    let docs = std::fs::read_to_string(path).unwrap();
    let start = docs.find(BEGIN).expect("begin marker") + BEGIN.len();
    let end = docs.find(END).expect("end marker");
    let want = element_list();
    if docs[start..end] != want {
        if std::env::var_os("CLACKS_BLESS").is_some() {
            std::fs::write(path, format!("{}{want}{}", &docs[..start], &docs[end..])).unwrap();
        } else {
            panic!(
                "docs/protocol.md lists other elements than the table; run the test with \
                 CLACKS_BLESS=1 to rewrite the list. The list:\n{want}"
            );
        }
    }
    assert_eq!(code_spans("a <b><c> d <e>."), "a `<b><c>` d `<e>`.");
    assert_eq!(code_spans("x < y"), "x < y");
}

#[test]
fn queue_limits_and_prefixes() {
    use crate::config::{Overflow, QueueConfig};
    let base = "<c><username>u</username><password>p</password><socket>s</socket>";
    let parse = |extra: &str| Config::from_xml(&format!("{base}{extra}</c>"), "h");
    assert_eq!(parse("").unwrap().queues, QueueConfig::default());
    let c = parse(
        "<queues><maxmessages>10</maxmessages><overflow>drop_oldest</overflow>\
         <maxdeliveries>3</maxdeliveries></queues>\
         <queueprefix><prefix>T::</prefix><maxmessages>5</maxmessages></queueprefix>\
         <queueprefix><prefix>T::big::</prefix><overflow>reject</overflow></queueprefix>",
    )
    .unwrap();
    let q = &c.queues;
    assert_eq!(q.max_deliveries, 3);
    let plain = q.limits_for(b"jobs");
    assert_eq!(
        (plain.max_messages, plain.overflow),
        (10, Overflow::DropOldest)
    );
    // A prefix's limits start from those of <queues>; the longest prefix applies.
    let t = q.limits_for(b"T::x");
    assert_eq!((t.max_messages, t.overflow), (5, Overflow::DropOldest));
    let big = q.limits_for(b"T::big::x");
    assert_eq!((big.max_messages, big.overflow), (10, Overflow::Reject));
    let err = |extra: &str| parse(extra).unwrap_err().to_string();
    assert!(
        err("<queueprefix><maxbytes>1</maxbytes></queueprefix>").contains("queueprefix[1]/prefix")
    );
    assert!(err("<queues><overflow>block</overflow></queues>").contains("<queues/overflow>"));
}
