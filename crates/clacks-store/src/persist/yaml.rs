//! The YAML reader both formats share: the body is parsed one byte per `char`, scalars are kept
//! as their literal text, and every node knows where in the file it starts.

use yaml_rust2::parser::{Event, Parser};
use yaml_rust2::scanner::{Marker, TScalarStyle};

use super::{PersistError, Position};

/// A YAML node with scalars kept as literal text, one `char` per byte of the file (escapes
/// resolved), and where it starts.
pub(super) enum Node {
    Scalar(String, Position),
    Null(Position),
    Map(Vec<(Node, Node)>, Position),
    Seq(Position),
}

/// Where `marker` is in a file whose YAML body starts at byte `base` of line 1.
fn position(marker: &Marker, base: usize) -> Position {
    let line = marker.line().max(1);
    Position {
        offset: base + marker.index(),
        line,
        column: marker.col() + 1 + if line == 1 { base } else { 0 },
    }
}

/// The bytes a scalar stands for: each `char` up to U+00FF is that byte (the file was read one
/// byte per `char`, and `\xNN` escapes give U+00NN); higher ones, from `\u` escapes, are UTF-8.
fn bytes_of(text: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len());
    for c in text.chars() {
        match u8::try_from(u32::from(c)) {
            Ok(b) => out.push(b),
            Err(_) => out.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes()),
        }
    }
    out
}

impl Node {
    fn at(&self) -> Position {
        match self {
            Node::Scalar(_, at) | Node::Null(at) | Node::Map(_, at) | Node::Seq(at) => *at,
        }
    }

    pub(super) fn into_map(self) -> Result<Vec<(Node, Node)>, PersistError> {
        match self {
            Node::Map(m, _) => Ok(m),
            Node::Null(_) => Ok(Vec::new()),
            other => Err(PersistError::InvalidYaml {
                at: other.at(),
                problem: "expected a mapping".into(),
            }),
        }
    }

    pub(super) fn into_bytes(self) -> Result<Vec<u8>, PersistError> {
        match self {
            Node::Scalar(s, _) => Ok(bytes_of(&s)),
            Node::Null(_) => Ok(Vec::new()),
            other => Err(PersistError::InvalidYaml {
                at: other.at(),
                problem: "expected a scalar".into(),
            }),
        }
    }
}

/// Parses `body` (which starts at byte `base` of the file) one byte per `char`.
pub(super) fn parse_yaml(body: &[u8], base: usize) -> Result<Node, PersistError> {
    let mut parser = Parser::new(body.iter().map(|&b| char::from(b)));
    let err = |e: yaml_rust2::ScanError| PersistError::InvalidYaml {
        at: position(e.marker(), base),
        problem: e.info().to_string(),
    };
    let mut root = Node::Null(Position {
        offset: base,
        line: 1,
        column: base + 1,
    });
    loop {
        let (event, marker) = parser.next_token().map_err(err)?;
        match event {
            Event::StreamEnd => return Ok(root),
            Event::StreamStart | Event::DocumentStart | Event::DocumentEnd | Event::Nothing => {}
            other => root = parse_node(&mut parser, other, position(&marker, base), base, 0)?,
        }
    }
}

fn parse_node<T: Iterator<Item = char>>(
    parser: &mut Parser<T>,
    event: Event,
    at: Position,
    base: usize,
    depth: usize,
) -> Result<Node, PersistError> {
    if depth > 16 {
        return Err(PersistError::InvalidYaml {
            at,
            problem: "nested too deeply".into(),
        });
    }
    let err = |e: yaml_rust2::ScanError| PersistError::InvalidYaml {
        at: position(e.marker(), base),
        problem: e.info().to_string(),
    };
    match event {
        Event::Scalar(s, style, _, _) => {
            if style == TScalarStyle::Plain && (s.is_empty() || s == "~") {
                Ok(Node::Null(at))
            } else {
                Ok(Node::Scalar(s, at))
            }
        }
        Event::MappingStart(..) => {
            let mut items = Vec::new();
            loop {
                let (ev, m) = parser.next_token().map_err(err)?;
                if ev == Event::MappingEnd {
                    return Ok(Node::Map(items, at));
                }
                let key = parse_node(parser, ev, position(&m, base), base, depth + 1)?;
                let (ev, m) = parser.next_token().map_err(err)?;
                let value = parse_node(parser, ev, position(&m, base), base, depth + 1)?;
                items.push((key, value));
            }
        }
        Event::SequenceStart(..) => loop {
            let (ev, m) = parser.next_token().map_err(err)?;
            if ev == Event::SequenceEnd {
                return Ok(Node::Seq(at));
            }
            parse_node(parser, ev, position(&m, base), base, depth + 1)?;
        },
        Event::Alias(_) => Err(PersistError::InvalidYaml {
            at,
            problem: "aliases are not supported".into(),
        }),
        other => Err(PersistError::InvalidYaml {
            at,
            problem: format!("unexpected {other:?}"),
        }),
    }
}
