//! The Prometheus text exposition format, version 0.0.4: `# HELP` and
//! `# TYPE` before each family, then one `name{label="value"} number` line
//! per sample. Sans-io: figures in, text out.

use std::fmt::Write as _;

/// The `Content-Type` a scraper expects for this format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// A family's Prometheus type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Only grows (restarts from 0 with the server); names end in `_total`.
    Counter,
    /// Goes up and down.
    Gauge,
    /// A `_sum` and a `_count` (no quantiles here).
    Summary,
}

impl Kind {
    fn word(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Summary => "summary",
        }
    }
}

/// A sample's number: counts stay exact integers, durations are floats.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Value {
    Int(u64),
    Float(f64),
}

/// One line of a family.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// Added to the family's name: empty, or `_sum` / `_count` of a summary.
    pub suffix: &'static str,
    pub labels: Vec<(&'static str, String)>,
    pub value: Value,
}

impl Sample {
    pub fn plain(value: Value) -> Sample {
        Sample {
            suffix: "",
            labels: Vec::new(),
            value,
        }
    }

    pub fn labelled(labels: Vec<(&'static str, String)>, value: Value) -> Sample {
        Sample {
            suffix: "",
            labels,
            value,
        }
    }
}

/// A metric: its name, what it means, its type and its samples.
#[derive(Debug, Clone, PartialEq)]
pub struct Family {
    pub name: &'static str,
    pub help: &'static str,
    pub kind: Kind,
    pub samples: Vec<Sample>,
}

impl Family {
    pub fn new(name: &'static str, kind: Kind, help: &'static str) -> Family {
        Family {
            name,
            help,
            kind,
            samples: Vec::new(),
        }
    }

    /// The family with one unlabelled sample.
    pub fn single(name: &'static str, kind: Kind, help: &'static str, value: Value) -> Family {
        let mut f = Family::new(name, kind, help);
        f.samples.push(Sample::plain(value));
        f
    }
}

/// `\` and newline escaped, as HELP text must be.
fn escape_help(s: &str, out: &mut String) {
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

/// `\`, `"` and newline escaped, as a label value must be.
fn escape_label(s: &str, out: &mut String) {
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

fn push_value(v: Value, out: &mut String) {
    match v {
        Value::Int(n) => {
            let _ = write!(out, "{n}");
        }
        Value::Float(f) if f.is_nan() => out.push_str("NaN"),
        Value::Float(f) if f.is_infinite() => out.push_str(if f > 0.0 { "+Inf" } else { "-Inf" }),
        // Rust prints finite floats in plain decimal, which the format
        // accepts (Go's ParseFloat).
        Value::Float(f) => {
            let _ = write!(out, "{f}");
        }
    }
}

/// The whole exposition; a family without samples is left out.
pub fn render(families: &[Family]) -> String {
    let mut out = String::with_capacity(256 * families.len());
    for f in families.iter().filter(|f| !f.samples.is_empty()) {
        out.push_str("# HELP ");
        out.push_str(f.name);
        out.push(' ');
        escape_help(f.help, &mut out);
        out.push('\n');
        let _ = writeln!(out, "# TYPE {} {}", f.name, f.kind.word());
        for s in &f.samples {
            out.push_str(f.name);
            out.push_str(s.suffix);
            if !s.labels.is_empty() {
                out.push('{');
                for (i, (k, v)) in s.labels.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(k);
                    out.push_str("=\"");
                    escape_label(v, &mut out);
                    out.push('"');
                }
                out.push('}');
            }
            out.push(' ');
            push_value(s.value, &mut out);
            out.push('\n');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_counter_and_a_gauge_render_with_help_and_type() {
        let mut replies = Family::new("ser_x_replies_total", Kind::Counter, "Replies sent.");
        for (class, n) in [("1xx", 3), ("2xx", 0)] {
            replies.samples.push(Sample::labelled(
                vec![("class", class.into())],
                Value::Int(n),
            ));
        }
        let fams = [
            Family::single("ser_x_current", Kind::Gauge, "Now.", Value::Int(7)),
            replies,
        ];
        assert_eq!(
            render(&fams),
            "# HELP ser_x_current Now.\n# TYPE ser_x_current gauge\nser_x_current 7\n\
             # HELP ser_x_replies_total Replies sent.\n# TYPE ser_x_replies_total counter\n\
             ser_x_replies_total{class=\"1xx\"} 3\nser_x_replies_total{class=\"2xx\"} 0\n"
        );
    }

    #[test]
    fn label_values_and_help_are_escaped() {
        let mut f = Family::new("m", Kind::Gauge, "a \\ b\nc");
        f.samples.push(Sample::labelled(
            vec![("desc", "say \"hi\"\\\n".into()), ("n", "1".into())],
            Value::Int(1),
        ));
        assert_eq!(
            render(&[f]),
            "# HELP m a \\\\ b\\nc\n# TYPE m gauge\nm{desc=\"say \\\"hi\\\"\\\\\\n\",n=\"1\"} 1\n"
        );
    }

    #[test]
    fn a_summary_has_sum_and_count_and_floats_are_plain() {
        let mut f = Family::new("d_seconds", Kind::Summary, "Delay.");
        f.samples.push(Sample {
            suffix: "_sum",
            labels: vec![("p", "1".into())],
            value: Value::Float(0.000125),
        });
        f.samples.push(Sample {
            suffix: "_count",
            labels: vec![("p", "1".into())],
            value: Value::Int(4),
        });
        assert_eq!(
            render(&[f]),
            "# HELP d_seconds Delay.\n# TYPE d_seconds summary\n\
             d_seconds_sum{p=\"1\"} 0.000125\nd_seconds_count{p=\"1\"} 4\n"
        );
        let mut s = String::new();
        for v in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY, 2.0] {
            push_value(Value::Float(v), &mut s);
            s.push(' ');
        }
        assert_eq!(s, "NaN +Inf -Inf 2 ");
    }

    #[test]
    fn an_empty_family_is_left_out() {
        let fams = [
            Family::new("none", Kind::Gauge, "Nothing."),
            Family::single("one", Kind::Gauge, "One.", Value::Int(1)),
        ];
        assert_eq!(render(&fams), "# HELP one One.\n# TYPE one gauge\none 1\n");
    }
}
