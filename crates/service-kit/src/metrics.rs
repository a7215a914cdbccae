//! Counters and gauges with labels, rendered in the Prometheus text exposition format 0.0.4.
//!
//! Written by hand rather than with the `prometheus` crate: a registry maps each metric name to a
//! family (its type, help text and one series per label set); a series is an atomic shared with
//! the [`Counter`] or [`Gauge`] handles, so updating a metric never takes the registry lock.
//! Families and series render sorted by name, so the output is deterministic. Every registry
//! carries `app_info{name,version} 1` and `process_uptime_seconds` (seconds since the registry
//! was created, which apps do at startup).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Instant;

/// The `Content-Type` of [`Metrics::render`]'s output.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";
/// Gauge always 1, labelled with the app's name and version.
pub const APP_INFO: &str = "app_info";
/// Gauge: seconds since the registry was created.
pub const PROCESS_UPTIME_SECONDS: &str = "process_uptime_seconds";

/// A registry of metrics; clones share the same registry.
#[derive(Clone)]
pub struct Metrics {
    registry: Arc<Registry>,
}

/// A monotonically increasing count; clones share the same series.
#[derive(Debug, Clone)]
pub struct Counter(Arc<AtomicU64>);

/// A value that goes up and down; clones share the same series.
#[derive(Debug, Clone)]
pub struct Gauge(Arc<AtomicU64>);

impl Metrics {
    /// A registry holding `app_info{name,version} 1` and `process_uptime_seconds`.
    pub fn new(app_name: &str, app_version: &str) -> Self {
        let metrics = Self {
            registry: Arc::new(Registry {
                started: Instant::now(),
                families: Mutex::new(BTreeMap::new()),
            }),
        };
        metrics
            .gauge(
                APP_INFO,
                "Name and version of the running app; the value is always 1.",
                &[("name", app_name), ("version", app_version)],
            )
            .set(1.0);
        metrics.uptime_gauge().set(0.0);
        metrics
    }

    /// The counter `name` with `labels` (in any order), created at 0 on first use. The first
    /// `help` given for a name is the one rendered.
    ///
    /// # Panics
    ///
    /// On a programming error: `name` or a label name is not a valid Prometheus name, a label
    /// name is repeated, or `name` is already a gauge.
    pub fn counter(
        &self,
        name: &'static str,
        help: &'static str,
        labels: &[(&'static str, &str)],
    ) -> Counter {
        Counter(self.series(name, help, Kind::Counter, labels))
    }

    /// The gauge `name` with `labels` (in any order), created at 0 on first use. The first
    /// `help` given for a name is the one rendered.
    ///
    /// # Panics
    ///
    /// As [`Metrics::counter`], with the kinds swapped.
    pub fn gauge(
        &self,
        name: &'static str,
        help: &'static str,
        labels: &[(&'static str, &str)],
    ) -> Gauge {
        Gauge(self.series(name, help, Kind::Gauge, labels))
    }

    /// Every metric in the text exposition format 0.0.4, with `# HELP` and `# TYPE` lines.
    pub fn render(&self) -> String {
        self.uptime_gauge()
            .set(self.registry.started.elapsed().as_secs_f64());
        let families = self.lock();
        let mut out = String::new();
        for (name, family) in families.iter() {
            out.push_str("# HELP ");
            out.push_str(name);
            out.push(' ');
            escape_into(&mut out, family.help, false);
            out.push_str("\n# TYPE ");
            out.push_str(name);
            out.push(' ');
            out.push_str(family.kind.as_str());
            out.push('\n');
            for (labels, value) in &family.series {
                out.push_str(name);
                render_labels(&mut out, labels);
                out.push(' ');
                let bits = value.load(Ordering::Relaxed);
                match family.kind {
                    Kind::Counter => {
                        let _infallible = write!(out, "{bits}");
                    }
                    Kind::Gauge => render_float(&mut out, f64::from_bits(bits)),
                }
                out.push('\n');
            }
        }
        out
    }

    fn uptime_gauge(&self) -> Gauge {
        self.gauge(
            PROCESS_UPTIME_SECONDS,
            "Seconds since the service started.",
            &[],
        )
    }

    fn series(
        &self,
        name: &'static str,
        help: &'static str,
        kind: Kind,
        labels: &[(&'static str, &str)],
    ) -> Arc<AtomicU64> {
        assert!(is_metric_name(name), "invalid metric name `{name}`");
        let mut label_set: LabelSet = labels
            .iter()
            .map(|&(label, value)| {
                assert!(
                    is_label_name(label),
                    "invalid label name `{label}` on metric `{name}`"
                );
                (label, value.to_owned())
            })
            .collect();
        label_set.sort_unstable_by_key(|&(label, _)| label);
        if let Some(pair) = label_set.windows(2).find(|pair| pair[0].0 == pair[1].0) {
            panic!("label `{}` repeated on metric `{name}`", pair[0].0);
        }
        let mut families = self.lock();
        let family = families.entry(name).or_insert_with(|| Family {
            kind,
            help,
            series: BTreeMap::new(),
        });
        assert!(
            family.kind == kind,
            "metric `{name}` is already a {}, not a {}",
            family.kind.as_str(),
            kind.as_str()
        );
        Arc::clone(family.series.entry(label_set).or_default())
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<&'static str, Family>> {
        // Updates under the lock are single inserts, so a panic elsewhere leaves the map valid.
        self.registry
            .families
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

impl Counter {
    /// Adds one.
    pub fn inc(&self) {
        self.inc_by(1);
    }

    /// Adds `amount`.
    pub fn inc_by(&self, amount: u64) {
        self.0.fetch_add(amount, Ordering::Relaxed);
    }

    /// The current count.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

impl Gauge {
    /// Sets the value.
    pub fn set(&self, value: f64) {
        self.0.store(value.to_bits(), Ordering::Relaxed);
    }

    /// The current value.
    pub fn get(&self) -> f64 {
        f64::from_bits(self.0.load(Ordering::Relaxed))
    }
}

/// The value of one sample in an exposition, `series` being the part before the value, e.g.
/// `http_requests_total{path="/health",status="200"}` (labels sorted by name, as rendered).
pub fn sample_value(exposition: &str, series: &str) -> Option<f64> {
    exposition
        .lines()
        .filter(|line| !line.starts_with('#'))
        .find_map(|line| {
            let (line_series, value) = line.rsplit_once(' ')?;
            (line_series == series).then(|| value.parse().ok())?
        })
}

struct Registry {
    started: Instant,
    families: Mutex<BTreeMap<&'static str, Family>>,
}

struct Family {
    kind: Kind,
    help: &'static str,
    series: BTreeMap<LabelSet, Arc<AtomicU64>>,
}

/// Label names and values, sorted by name.
type LabelSet = Vec<(&'static str, String)>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Counter,
    Gauge,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Self::Counter => "counter",
            Self::Gauge => "gauge",
        }
    }
}

fn render_labels(out: &mut String, labels: &LabelSet) {
    if labels.is_empty() {
        return;
    }
    out.push('{');
    for (index, (label, value)) in labels.iter().enumerate() {
        if index > 0 {
            out.push(',');
        }
        out.push_str(label);
        out.push_str("=\"");
        escape_into(out, value, true);
        out.push('"');
    }
    out.push('}');
}

/// Escapes `\` and newline (help text), and `"` too in label values.
fn escape_into(out: &mut String, text: &str, is_label_value: bool) {
    for character in text.chars() {
        match character {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '"' if is_label_value => out.push_str("\\\""),
            other => out.push(other),
        }
    }
}

/// Rust's shortest round-trip form, which never uses an exponent, plus the format's spellings
/// of the special values.
fn render_float(out: &mut String, value: f64) {
    if value.is_nan() {
        out.push_str("NaN");
    } else if value.is_infinite() {
        out.push_str(if value > 0.0 { "+Inf" } else { "-Inf" });
    } else {
        let _infallible = write!(out, "{value}");
    }
}

fn is_metric_name(name: &str) -> bool {
    let mut characters = name.chars();
    characters
        .next()
        .is_some_and(|first| first.is_ascii_alphabetic() || first == '_' || first == ':')
        && characters.all(|other| other.is_ascii_alphanumeric() || other == '_' || other == ':')
}

fn is_label_name(name: &str) -> bool {
    let mut characters = name.chars();
    !name.starts_with("__")
        && characters
            .next()
            .is_some_and(|first| first.is_ascii_alphabetic() || first == '_')
        && characters.all(|other| other.is_ascii_alphanumeric() || other == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The rendering with the uptime value, which depends on the clock, replaced by `<uptime>`.
    fn render_without_uptime(metrics: &Metrics) -> String {
        metrics
            .render()
            .lines()
            .map(|line| match line.strip_prefix("process_uptime_seconds ") {
                Some(_) => "process_uptime_seconds <uptime>\n".to_owned(),
                None => format!("{line}\n"),
            })
            .collect()
    }

    #[test]
    fn renders_the_text_format_sorted_by_name_and_labels() {
        let metrics = Metrics::new("api", "0.1.0");
        let ok = metrics.counter(
            "http_requests_total",
            "HTTP requests answered.",
            &[("status", "200"), ("path", "/health")],
        );
        ok.inc();
        ok.inc_by(2);
        metrics
            .counter(
                "http_requests_total",
                "ignored: the first help text wins",
                &[("path", "/health"), ("status", "503")],
            )
            .inc();
        metrics.gauge("queue_depth", "Jobs waiting.", &[]).set(2.5);

        assert_eq!(
            render_without_uptime(&metrics),
            "# HELP app_info Name and version of the running app; the value is always 1.\n\
             # TYPE app_info gauge\n\
             app_info{name=\"api\",version=\"0.1.0\"} 1\n\
             # HELP http_requests_total HTTP requests answered.\n\
             # TYPE http_requests_total counter\n\
             http_requests_total{path=\"/health\",status=\"200\"} 3\n\
             http_requests_total{path=\"/health\",status=\"503\"} 1\n\
             # HELP process_uptime_seconds Seconds since the service started.\n\
             # TYPE process_uptime_seconds gauge\n\
             process_uptime_seconds <uptime>\n\
             # HELP queue_depth Jobs waiting.\n\
             # TYPE queue_depth gauge\n\
             queue_depth 2.5\n"
        );
    }

    #[test]
    fn handles_to_the_same_series_share_one_value() {
        let metrics = Metrics::new("api", "0.1.0");
        let first = metrics.counter("jobs_total", "Jobs.", &[("kind", "a")]);
        let second = metrics
            .clone()
            .counter("jobs_total", "Jobs.", &[("kind", "a")]);
        let other = metrics.counter("jobs_total", "Jobs.", &[("kind", "b")]);
        first.inc();
        second.inc();
        assert_eq!(first.get(), 2);
        assert_eq!(other.get(), 0);
        let text = metrics.render();
        assert_eq!(sample_value(&text, "jobs_total{kind=\"a\"}"), Some(2.0));
        assert_eq!(sample_value(&text, "jobs_total{kind=\"b\"}"), Some(0.0));
        assert_eq!(sample_value(&text, "jobs_total"), None);
    }

    #[test]
    fn escapes_label_values_and_help_text() {
        let metrics = Metrics::new("a\"b", "1\\2\n3");
        metrics
            .gauge("odd_help", "line one\nback\\slash \"quoted\"", &[])
            .set(1.0);
        let text = metrics.render();
        assert!(
            text.contains("app_info{name=\"a\\\"b\",version=\"1\\\\2\\n3\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("# HELP odd_help line one\\nback\\\\slash \"quoted\"\n"),
            "{text}"
        );
    }

    #[test]
    fn renders_special_and_large_gauge_values() {
        let metrics = Metrics::new("api", "0.1.0");
        let cases = [
            (f64::NAN, "NaN"),
            (f64::INFINITY, "+Inf"),
            (f64::NEG_INFINITY, "-Inf"),
            (-0.25, "-0.25"),
            (1e21, "1000000000000000000000"),
            (1_712_345_678.125, "1712345678.125"),
        ];
        let gauge = metrics.gauge("value", "A value.", &[]);
        for (value, expected) in cases {
            gauge.set(value);
            let text = metrics.render();
            assert!(text.contains(&format!("\nvalue {expected}\n")), "{text}");
        }
    }

    #[test]
    fn uptime_grows_between_renders() {
        let metrics = Metrics::new("api", "0.1.0");
        let first = sample_value(&metrics.render(), PROCESS_UPTIME_SECONDS).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        let second = sample_value(&metrics.render(), PROCESS_UPTIME_SECONDS).unwrap();
        assert!(first >= 0.0);
        assert!(second >= first + 0.02, "{first} then {second}");
    }

    #[test]
    fn names_follow_the_prometheus_rules() {
        for good in ["a", "_a", "a:b_c9", "http_requests_total"] {
            assert!(is_metric_name(good), "{good}");
        }
        for bad in ["", "9a", "a-b", "a b", "é"] {
            assert!(!is_metric_name(bad), "{bad}");
        }
        for good in ["path", "_x", "status_2"] {
            assert!(is_label_name(good), "{good}");
        }
        for bad in ["", "__name__", "a:b", "2x"] {
            assert!(!is_label_name(bad), "{bad}");
        }
    }

    #[test]
    fn misuse_is_a_panic_naming_the_metric() {
        let metrics = Metrics::new("api", "0.1.0");
        metrics.counter("jobs_total", "Jobs.", &[]);
        let messages = [
            std::panic::catch_unwind(|| metrics.gauge("jobs_total", "Jobs.", &[])),
            std::panic::catch_unwind(|| metrics.gauge("bad-name", "Bad.", &[])),
            std::panic::catch_unwind(|| metrics.gauge("g", "G.", &[("a", "1"), ("a", "2")])),
        ]
        .map(|outcome| {
            let payload = outcome.unwrap_err();
            payload
                .downcast_ref::<String>()
                .cloned()
                .unwrap_or_default()
        });
        assert_eq!(
            messages,
            [
                "metric `jobs_total` is already a counter, not a gauge",
                "invalid metric name `bad-name`",
                "label `a` repeated on metric `g`",
            ]
        );
        assert!(metrics.render().contains("jobs_total 0\n"), "still usable");
    }
}
