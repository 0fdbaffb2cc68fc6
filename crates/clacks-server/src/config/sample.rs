//! The commented sample config (`clacksd --print-default-config`), generated from the element
//! table: every element with its doc and allowed values; elements with a default set to it,
//! optional ones commented out with an example.

use super::table::{Entry, Section, GROUPS};

/// Indentation of the root's children.
const INDENT: &str = "    ";
/// Longest line of the sample.
const WIDTH: usize = 100;
/// Room for comment text in a line: the indentation, `<!-- ` and ` -->` take the rest.
const TEXT: usize = WIDTH - INDENT.len() - 9;

/// The commented sample configuration: parsed, it gives the defaults (with its example main
/// user and socket).
pub fn sample_config() -> String {
    let mut out = String::from(
        "<!-- clacksd configuration. The same file works with the Perl Net::Clacks server, which\n     \
         ignores the elements it does not know. Elements that are set show their default (or an\n     \
         example where a working config needs one); optional ones are commented out. -->\n\
         <clacks>\n",
    );
    for (i, group) in GROUPS.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        out += &format!("{INDENT}<!-- ===== {} ===== -->\n", group.title);
        for e in group.entries {
            match e {
                Entry::Section(s) => section(&mut out, s),
                _ => leaf(&mut out, e),
            }
        }
    }
    out += "</clacks>\n";
    out
}

/// The doc of `e` as the sample's comments and the docs say it, with its allowed values.
fn doc_line(e: &Entry) -> String {
    match e {
        // Their docs name the words.
        Entry::OnError(_)
        | Entry::Policy(_)
        | Entry::Overflow(_)
        | Entry::Fsync(_)
        | Entry::Flag(_) => {
            format!("{}.", e.doc())
        }
        _ => match e.allowed() {
            Some(allowed) => format!("{}. Allowed: {allowed}.", e.doc()),
            None => format!("{}.", e.doc()),
        },
    }
}

/// `<name>value</name>`.
fn element(e: &Entry) -> String {
    let name = e.name();
    format!("<{name}>{}</{name}>", e.sample_value())
}

fn leaf(out: &mut String, e: &Entry) {
    comment(out, &wrap(&doc_line(e), TEXT));
    if e.in_sample() {
        *out += &format!("{INDENT}{}\n", element(e));
    } else {
        *out += &format!("{INDENT}<!-- {} -->\n", element(e));
    }
}

/// The section's doc with one line per child, then its examples commented out: one example as
/// a block, several one per line.
fn section(out: &mut String, s: &Section) {
    let mut lines = wrap(&format!("{}:", s.doc), TEXT);
    let label = s.children.iter().map(|c| c.name().len() + 2).max();
    let label = label.unwrap_or(0) + 2;
    for c in s.children {
        let tag = format!("<{}>", c.name());
        let wrapped = wrap(&doc_line(c), TEXT - 2 - label);
        for (i, text) in wrapped.iter().enumerate() {
            let head = if i == 0 { tag.as_str() } else { "" };
            lines.push(format!("  {head:label$}{text}"));
        }
    }
    comment(out, &lines);
    let children = |names: &[&str]| -> Vec<String> {
        s.children
            .iter()
            .filter(|c| names.contains(&c.name()))
            .map(element)
            .collect()
    };
    let name = s.element;
    match s.examples {
        [one] => {
            *out += &format!("{INDENT}<!-- <{name}>\n");
            for child in children(one) {
                *out += &format!("{INDENT}{INDENT}{child}\n");
            }
            *out += &format!("{INDENT}</{name}> -->\n");
        }
        several => {
            for names in several {
                let inner = children(names).concat();
                *out += &format!("{INDENT}<!-- <{name}>{inner}</{name}> -->\n");
            }
        }
    }
}

/// `lines` as one comment.
fn comment(out: &mut String, lines: &[String]) {
    let last = lines.len().saturating_sub(1);
    for (i, line) in lines.iter().enumerate() {
        let open = if i == 0 { "<!-- " } else { "     " };
        let close = if i == last { " -->" } else { "" };
        *out += &format!("{INDENT}{open}{line}{close}\n");
    }
}

/// `text` in lines of at most `width` characters, broken between words.
fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    let mut line = String::new();
    for word in text.split_whitespace() {
        if !line.is_empty() && line.chars().count() + 1 + word.chars().count() > width {
            lines.push(std::mem::take(&mut line));
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    if !line.is_empty() || lines.is_empty() {
        lines.push(line);
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::table::{self, entries};
    use crate::config::{Config, ConfigError};

    #[test]
    fn every_element_appears_with_its_default_or_example() {
        let sample = sample_config();
        for e in entries() {
            let shown = match e {
                Entry::Section(_) => format!("<{}>", e.name()),
                _ => element(e),
            };
            assert!(sample.contains(&shown), "{} missing: {shown}", e.element());
            if let Some(default) = e.default() {
                assert!(shown.contains(&default), "{}", e.element());
            }
            let top_level = table::root_entries().any(|t| t == e);
            if top_level && e.in_sample() {
                let line = format!("{INDENT}{shown}");
                assert!(sample.lines().any(|l| l == line), "{} not set", e.element());
            }
        }
        assert!(
            sample.lines().all(|l| l.chars().count() <= WIDTH),
            "{sample}"
        );
    }

    /// Parsed, the sample is the defaults plus its example main user and socket.
    #[test]
    fn the_sample_parses_back_to_the_defaults() {
        let parsed = Config::from_xml(&sample_config(), "h").unwrap();
        let mut want = Config::with_user(table::USERNAME.example, table::PASSWORD.example);
        want.sockets = vec![table::SOCKET.example.into()];
        assert_eq!(format!("{parsed:?}"), format!("{want:?}"));
    }

    /// Every commented-out example, uncommented into the sample, is read (it may only fail for
    /// a file that does not exist here or a companion it needs); the memcached block gives the
    /// memcached defaults.
    #[test]
    fn commented_examples_are_config() {
        let sample = sample_config();
        let mut examples = Vec::new();
        let mut block: Option<String> = None;
        for line in sample.lines().map(str::trim) {
            if let Some(b) = block.as_mut() {
                b.push_str(line.trim_end_matches(" -->"));
                if line.ends_with(" -->") {
                    examples.extend(block.take());
                }
            } else if let Some(rest) = line.strip_prefix("<!-- <") {
                let text = format!("<{rest}");
                match text.strip_suffix(" -->") {
                    Some(one) => examples.push(one.to_string()),
                    None => block = Some(text),
                }
            }
        }
        assert!(examples.len() >= 10, "{examples:?}");
        let end = sample.rfind("</clacks>").unwrap();
        for example in &examples {
            let text = format!("{}{example}{}", &sample[..end], &sample[end..]);
            match Config::from_xml(&text, "h") {
                Ok(_) => {}
                Err(ConfigError::Invalid { problem, .. })
                    if problem.contains("not found") || problem.contains("<ip>") =>
                {
                    assert!(example.contains("<ip>"), "{example}: {problem}");
                }
                Err(ConfigError::Invalid { problem, .. })
                    if problem.contains("needs a <persistancefile>") =>
                {
                    assert!(example.starts_with("<journal>"), "{example}: {problem}");
                }
                Err(e) => panic!("{example}: {e}"),
            }
        }
        let memcached = examples.iter().find(|e| e.starts_with("<memcached>"));
        let text = sample.replace("</clacks>", &format!("{}</clacks>", memcached.unwrap()));
        let m = Config::from_xml(&text, "h").unwrap().memcached.unwrap();
        assert_eq!(m.max_item_size, table::MEMCACHED_MAX_ITEM_SIZE.default);
        assert_eq!(m.ips, vec![table::MEMCACHED_IP.default.unwrap()]);
    }

    #[test]
    fn docs_fit_in_an_xml_comment() {
        for e in entries() {
            assert!(!e.doc().contains("--"), "{}", e.element());
            assert!(!e.sample_value().contains("--"), "{}", e.element());
        }
        for g in GROUPS {
            assert!(!g.title.contains("--"), "{}", g.title);
        }
    }

    #[test]
    fn wrap_breaks_between_words() {
        assert_eq!(wrap("a bb ccc dddd", 6), ["a bb", "ccc", "dddd"]);
        assert_eq!(wrap("", 6), [""]);
        assert_eq!(wrap("overlong", 3), ["overlong"]);
    }
}
