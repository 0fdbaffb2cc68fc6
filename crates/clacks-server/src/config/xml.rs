//! The config file as XML::Simple sees it: a tree of elements with their text, attributes read
//! as child elements, repeated elements kept in order. A small reader rather than serde: the
//! reference takes the first of repeated single elements, accepts attributes for elements and
//! unknown elements anywhere, and replaces root elements per host before anything is read, none
//! of which a derived deserializer does. Values are read through the rows of [`super::table`].

use quick_xml::events::{BytesStart, Event};

use super::table::{leaf, Choice, Numeric, Range, Text, Value, HOSTS};
use super::{invalid, ConfigError};

/// An element: its text and its child elements (attributes included), in document order.
#[derive(Debug, Default, Clone)]
pub(super) struct Node {
    text: String,
    children: Vec<(String, Node)>,
}

fn xml_err(e: &dyn std::fmt::Display, pos: u64) -> ConfigError {
    ConfigError::Xml(format!("{e} at byte {pos}"))
}

/// The attributes of `e` as child elements.
fn attributes(e: &BytesStart<'_>, pos: u64) -> Result<Vec<(String, Node)>, ConfigError> {
    let mut out = Vec::new();
    for a in e.attributes() {
        let a = a.map_err(|e| xml_err(&e, pos))?;
        let value = a.unescape_value().map_err(|e| xml_err(&e, pos))?;
        out.push((
            String::from_utf8_lossy(a.key.as_ref()).into_owned(),
            Node {
                text: value.into_owned(),
                children: Vec::new(),
            },
        ));
    }
    Ok(out)
}

/// Parses `text` into its root element (whatever its name).
pub(super) fn parse(text: &str) -> Result<Node, ConfigError> {
    let mut reader = quick_xml::Reader::from_str(text);
    let mut stack: Vec<(String, Node)> = vec![(String::new(), Node::default())];
    loop {
        let pos = reader.buffer_position();
        match reader.read_event().map_err(|e| xml_err(&e, pos))? {
            Event::Start(e) => {
                let name = String::from_utf8_lossy(e.name().as_ref()).into_owned();
                let node = Node {
                    text: String::new(),
                    children: attributes(&e, pos)?,
                };
                stack.push((name, node));
            }
            Event::Empty(e) => {
                let name = String::from_utf8_lossy(e.name().as_ref()).into_owned();
                let node = Node {
                    text: String::new(),
                    children: attributes(&e, pos)?,
                };
                if let Some(top) = stack.last_mut() {
                    top.1.children.push((name, node));
                }
            }
            Event::End(_) => {
                let done = stack
                    .pop()
                    .ok_or_else(|| xml_err(&"unbalanced end tag", pos))?;
                match stack.last_mut() {
                    Some(parent) => parent.1.children.push(done),
                    None => return Err(xml_err(&"unbalanced end tag", pos)),
                }
            }
            Event::Text(t) => {
                let s = t.unescape().map_err(|e| xml_err(&e, pos))?;
                if let Some(top) = stack.last_mut() {
                    top.1.text.push_str(&s);
                }
            }
            Event::CData(t) => {
                if let Some(top) = stack.last_mut() {
                    top.1.text.push_str(&String::from_utf8_lossy(&t));
                }
            }
            Event::Eof => break,
            _ => {}
        }
    }
    if stack.len() != 1 {
        return Err(ConfigError::Xml("unclosed element at end of file".into()));
    }
    let doc = stack.pop().map(|(_, e)| e).unwrap_or_default();
    let mut roots = doc.children.into_iter();
    match (roots.next(), roots.next()) {
        (Some((_, root)), None) => Ok(root),
        (None, _) => Err(ConfigError::Xml("no root element".into())),
        (Some(_), Some(_)) => Err(ConfigError::Xml("more than one root element".into())),
    }
}

impl Node {
    /// The names of the child elements, in order.
    pub(super) fn names(&self) -> impl Iterator<Item = &str> {
        self.children.iter().map(|(n, _)| n.as_str())
    }

    /// Every child element called `name`.
    pub(super) fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Node> + 'a {
        self.children
            .iter()
            .filter(move |(n, _)| n == name)
            .map(|(_, e)| e)
    }

    /// The first child element called `name`.
    pub(super) fn first(&self, name: &str) -> Option<&Node> {
        self.children
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, e)| e)
    }

    /// The element's own text, trimmed.
    pub(super) fn trimmed(&self) -> String {
        self.text.trim().to_string()
    }

    /// `<hosts><hostname>` children replace root children of the same name.
    pub(super) fn apply_host_overrides(&mut self, hostname: &str) {
        let Some(host) = self
            .first(HOSTS.element)
            .and_then(|h| h.first(hostname))
            .cloned()
        else {
            return;
        };
        let names: Vec<String> = host.children.iter().map(|(n, _)| n.clone()).collect();
        self.children.retain(|(n, _)| !names.contains(n));
        self.children.extend(host.children);
    }

    /// The child element of a row (its path's last segment, a child of this element).
    pub(super) fn child(&self, element: &str) -> Option<&Node> {
        self.first(leaf(element))
    }

    /// The trimmed text of the text row `t`; `None` when absent.
    pub(super) fn text(&self, t: &Text) -> Option<String> {
        self.child(t.element).map(Node::trimmed)
    }

    /// The trimmed texts of every element of the repeatable row `t`.
    pub(super) fn texts(&self, t: &Text) -> Vec<String> {
        self.all(leaf(t.element)).map(Node::trimmed).collect()
    }

    /// The flag row `t`: set unless absent, empty or `0`.
    pub(super) fn flag(&self, t: &Text) -> bool {
        self.text(t).is_some_and(|v| !v.is_empty() && v != "0")
    }

    /// The numeric element `range.element`, checked against its range; `None` when absent.
    pub(super) fn optional<T: Value>(&self, range: &Range<T>) -> Result<Option<T>, ConfigError> {
        self.child(range.element)
            .map(|e| {
                range
                    .parse(&e.trimmed())
                    .map_err(|p| invalid(range.element, p))
            })
            .transpose()
    }

    /// The numeric element `n.element`, checked against its range; its default when absent.
    pub(super) fn setting<T: Value>(&self, n: &Numeric<T>) -> Result<T, ConfigError> {
        Ok(self.optional(&n.range())?.unwrap_or(n.default))
    }

    /// The choice element `c.element`; its default when absent.
    pub(super) fn choice<T: Copy + PartialEq>(&self, c: &Choice<T>) -> Result<T, ConfigError> {
        match self.child(c.element) {
            None => Ok(c.default),
            Some(e) => c.parse(&e.trimmed()).map_err(|p| invalid(c.element, p)),
        }
    }
}
