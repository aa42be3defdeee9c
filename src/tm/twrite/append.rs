//! The `tw_append` module parameter: named lists of extra items (AVPs,
//! header fields, the body) that `t_write_req`/`t_write_unix` hand to the
//! application after the fixed lines.
//!
//! Grammar (tm 0.9 documentation):
//! `name ':' element (';' element)*`, element =
//! `[title '='] ("avp" '[' avp_spec ']' | "hdr" '[' hdr_name ']')` or
//! `[title '='] "msg[body]"`. Whitespace around every token is ignored,
//! keywords are case-insensitive.
//!
//! Decisions where the documentation is loose:
//! - a title defaults to the AVP name (a numeric id `i:12` gives `12`) or
//!   the header name as written;
//! - `msg[body]` is accepted with or without a title (the documentation's
//!   grammar asks for one, its own example gives one); its title defaults
//!   to `body` and is never written: the body travels in the last block of
//!   the request description, not as a `Title: value` line;
//! - each `tw_append` modparam defines one list; defining the same name
//!   twice is an error rather than a silent replacement.

use thiserror::Error;

use crate::route::ctx::AvpName;

/// Where one appended value comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TwSource {
    /// The value of an AVP (the most recently added one of that name).
    Avp(AvpName),
    /// The first header field of that name (compact forms match).
    Hdr(String),
    /// The message body.
    Body,
}

/// One element of a list: the title it is written under and its source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TwItem {
    pub title: String,
    pub source: TwSource,
}

/// One named list (`t_write_req("/fifo", "app/<name>")` selects it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TwAppend {
    pub name: String,
    pub items: Vec<TwItem>,
}

impl TwAppend {
    /// Whether `msg[body]` is among the items.
    pub fn wants_body(&self) -> bool {
        self.items.iter().any(|i| i.source == TwSource::Body)
    }
}

/// Why a `tw_append` value was refused. `element` counts from 1.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum TwAppendError {
    /// No `:` separating the list name from its elements.
    #[error("tw_append `{text}`: expected `name:element;...`, found no `:`")]
    MissingColon { text: String },
    /// The list name is empty or holds characters other than token ones
    /// (it is written after `/` in the script's application argument).
    #[error("tw_append `{text}`: expected a list name (token characters) before `:`")]
    BadName { text: String },
    /// Nothing between two `;` (or after `:`).
    #[error("tw_append list `{list}`: element {element} is empty")]
    EmptyElement { list: String, element: usize },
    /// A title that is empty or not a token (it becomes `Title: value`).
    #[error("tw_append list `{list}`: element {element}: expected a token title before `=`, found `{found}`")]
    BadTitle {
        list: String,
        element: usize,
        found: String,
    },
    /// The element is none of `avp[..]`, `hdr[..]`, `msg[body]`.
    #[error("tw_append list `{list}`: element {element}: expected avp[..], hdr[..] or msg[body], found `{found}`")]
    UnknownSource {
        list: String,
        element: usize,
        found: String,
    },
    /// `[` without a closing `]` at the end of the element.
    #[error("tw_append list `{list}`: element {element}: expected `]` at the end of `{found}`")]
    MissingBracket {
        list: String,
        element: usize,
        found: String,
    },
    /// `avp[]`, `hdr[]`, or a header name that is not a token.
    #[error(
        "tw_append list `{list}`: element {element}: expected a name inside [], found `{found}`"
    )]
    BadArgument {
        list: String,
        element: usize,
        found: String,
    },
    /// `msg[...]` with anything but `body`.
    #[error("tw_append list `{list}`: element {element}: expected msg[body], found msg[{found}]")]
    UnknownMsgPart {
        list: String,
        element: usize,
        found: String,
    },
    /// A second `tw_append` with a name already defined.
    #[error("tw_append list `{name}` defined twice")]
    Duplicate { name: String },
}

/// All lists given by `tw_append` modparams.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TwAppends {
    lists: Vec<TwAppend>,
}

impl TwAppends {
    pub fn new() -> Self {
        TwAppends::default()
    }

    /// Parses one `tw_append` modparam value and adds its list.
    pub fn add(&mut self, text: &str) -> Result<(), TwAppendError> {
        let list = parse_tw_append(text)?;
        if self.get(&list.name).is_some() {
            return Err(TwAppendError::Duplicate { name: list.name });
        }
        self.lists.push(list);
        Ok(())
    }

    /// The list called `name` (exact match, as SER compares it).
    pub fn get(&self, name: &str) -> Option<&TwAppend> {
        self.lists.iter().find(|l| l.name == name)
    }

    pub fn is_empty(&self) -> bool {
        self.lists.is_empty()
    }
}

/// RFC 3261 token characters: what may stand in a header name or title.
pub(crate) fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes().all(|c| {
            c.is_ascii_alphanumeric()
                || matches!(
                    c,
                    b'-' | b'.' | b'!' | b'%' | b'*' | b'_' | b'+' | b'`' | b'\'' | b'~'
                )
        })
}

/// Parses one `tw_append` value into its list.
pub fn parse_tw_append(text: &str) -> Result<TwAppend, TwAppendError> {
    let (name, rest) = text
        .split_once(':')
        .ok_or_else(|| TwAppendError::MissingColon {
            text: text.to_owned(),
        })?;
    let name = name.trim();
    if !is_token(name) {
        return Err(TwAppendError::BadName {
            text: text.to_owned(),
        });
    }
    let mut items = Vec::new();
    for (i, raw) in rest.split(';').enumerate() {
        items.push(parse_element(name, i + 1, raw.trim())?);
    }
    Ok(TwAppend {
        name: name.to_owned(),
        items,
    })
}

fn parse_element(list: &str, element: usize, raw: &str) -> Result<TwItem, TwAppendError> {
    if raw.is_empty() {
        return Err(TwAppendError::EmptyElement {
            list: list.to_owned(),
            element,
        });
    }
    let found = || raw.to_owned();
    let (title, spec) = match raw.split_once('=') {
        // `=` inside the brackets (an odd AVP name) is not a title separator
        Some((t, s)) if !t.contains('[') => {
            let t = t.trim();
            if !is_token(t) {
                return Err(TwAppendError::BadTitle {
                    list: list.to_owned(),
                    element,
                    found: t.to_owned(),
                });
            }
            (Some(t), s.trim())
        }
        _ => (None, raw),
    };
    let open = spec.find('[').ok_or_else(|| TwAppendError::UnknownSource {
        list: list.to_owned(),
        element,
        found: found(),
    })?;
    let keyword = spec.get(..open).unwrap_or("").trim();
    let inner = spec
        .get(open + 1..)
        .and_then(|r| r.strip_suffix(']'))
        .ok_or_else(|| TwAppendError::MissingBracket {
            list: list.to_owned(),
            element,
            found: found(),
        })?
        .trim();
    let bad_arg = || TwAppendError::BadArgument {
        list: list.to_owned(),
        element,
        found: found(),
    };
    let (default_title, source) = if keyword.eq_ignore_ascii_case("avp") {
        if inner.is_empty() {
            return Err(bad_arg());
        }
        let name = AvpName::parse(inner);
        let t = match &name {
            AvpName::Int(n) => n.to_string(),
            AvpName::Str(s) => String::from_utf8_lossy(s).into_owned(),
        };
        (t, TwSource::Avp(name))
    } else if keyword.eq_ignore_ascii_case("hdr") {
        if !is_token(inner) {
            return Err(bad_arg());
        }
        (inner.to_owned(), TwSource::Hdr(inner.to_owned()))
    } else if keyword.eq_ignore_ascii_case("msg") {
        if !inner.eq_ignore_ascii_case("body") {
            return Err(TwAppendError::UnknownMsgPart {
                list: list.to_owned(),
                element,
                found: inner.to_owned(),
            });
        }
        ("body".to_owned(), TwSource::Body)
    } else {
        return Err(TwAppendError::UnknownSource {
            list: list.to_owned(),
            element,
            found: found(),
        });
    };
    // A default title must itself be writable as `Title: value`.
    if title.is_none() && !is_token(&default_title) {
        return Err(TwAppendError::BadTitle {
            list: list.to_owned(),
            element,
            found: default_title,
        });
    }
    Ok(TwItem {
        title: title.map_or(default_title, str::to_owned),
        source,
    })
}

/// Splits the script's application argument `"action[/append]"` at the
/// first `/`; an empty append name counts as none.
pub fn split_action(arg: &str) -> (&str, Option<&str>) {
    match arg.split_once('/') {
        Some((action, append)) if !append.is_empty() => (action, Some(append)),
        Some((action, _)) => (action, None),
        None => (arg, None),
    }
}
