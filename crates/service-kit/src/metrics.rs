//! The app's metrics registry on `prometheus-client` (the Prometheus project's own Rust
//! client), exposed in the OpenMetrics text format: counters, gauges and histograms with labels,
//! created by name on first use, so apps add their own metrics without declaring them up front.
//!
//! Every registry carries `app_info{name,version} 1` and `process_uptime_seconds`; the router
//! adds `http_requests_total{path,status}` and the histogram
//! `http_request_duration_seconds{path}` (see [`crate::routes`]), which the generated alert
//! rules and dashboards query. Updating a metric never takes the registry lock: handles share
//! the series' atomics with the registry.

use std::collections::BTreeMap;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter as ClientCounter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge as ClientGauge;
use prometheus_client::metrics::histogram::Histogram as ClientHistogram;
use prometheus_client::registry::Registry;

/// The `Content-Type` of [`Metrics::render`]'s output.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
/// Gauge always 1, labelled with the app's name and version.
pub const APP_INFO: &str = "app_info";
/// Gauge: seconds since the registry was created.
pub const PROCESS_UPTIME_SECONDS: &str = "process_uptime_seconds";
/// Upper bounds (seconds) of every histogram's buckets: 5 ms to 10 s, roughly doubling, so a
/// p99 threshold anywhere in that range falls near a bound.
pub const DURATION_BUCKETS: [f64; 12] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 7.5, 10.0,
];

/// A registry of metrics; clones share the same registry.
#[derive(Clone)]
pub struct Metrics {
    shared: Arc<Shared>,
}

/// A monotonically increasing count; clones share the same series.
#[derive(Debug, Clone)]
pub struct Counter(ClientCounter);

/// A value that goes up and down; clones share the same series.
#[derive(Debug, Clone)]
pub struct Gauge(ClientGauge<f64, AtomicU64>);

/// A distribution of observed values in [`DURATION_BUCKETS`]; clones share the same series.
#[derive(Debug, Clone)]
pub struct Histogram(ClientHistogram);

impl Metrics {
    /// A registry holding `app_info{name,version} 1` and `process_uptime_seconds`.
    pub fn new(app_name: &str, app_version: &str) -> Self {
        let mut registry = Registry::default();
        let info = Family::<Labels, ClientGauge>::default();
        info.get_or_create(&vec![
            ("name".to_owned(), escape_label_value(app_name)),
            ("version".to_owned(), escape_label_value(app_version)),
        ])
        .set(1);
        registry.register(
            APP_INFO,
            "Name and version of the running app; the value is always 1",
            info,
        );
        let uptime = ClientGauge::<f64, AtomicU64>::default();
        registry.register(
            PROCESS_UPTIME_SECONDS,
            "Seconds since the service started",
            uptime.clone(),
        );
        let families = BTreeMap::from([
            (APP_INFO, FamilyRef::Reserved),
            (PROCESS_UPTIME_SECONDS, FamilyRef::Reserved),
        ]);
        Self {
            shared: Arc::new(Shared {
                started: Instant::now(),
                uptime,
                inner: Mutex::new(Inner { registry, families }),
            }),
        }
    }

    /// The counter `name` (which must end in `_total`) with `labels` (in any order), created
    /// at 0 on first use. The first `help` given for a name is the one rendered.
    ///
    /// # Panics
    ///
    /// On a programming error: `name` or a label name is not a valid Prometheus name, a label
    /// name is repeated, `name` does not end in `_total`, or `name` is already another kind.
    pub fn counter(
        &self,
        name: &'static str,
        help: &'static str,
        labels: &[(&'static str, &str)],
    ) -> Counter {
        assert!(
            name.ends_with("_total") && name.len() > "_total".len(),
            "counter `{name}` must end in `_total`"
        );
        let labels = label_set(name, labels);
        let FamilyRef::Counter(family) = self.lock().family(name, help, Kind::Counter) else {
            unreachable!("`family` checks the kind")
        };
        Counter(family.get_or_create(&labels).clone())
    }

    /// The gauge `name` with `labels` (in any order), created at 0 on first use. The first
    /// `help` given for a name is the one rendered.
    ///
    /// # Panics
    ///
    /// As [`Metrics::counter`], except for the `_total` rule.
    pub fn gauge(
        &self,
        name: &'static str,
        help: &'static str,
        labels: &[(&'static str, &str)],
    ) -> Gauge {
        let labels = label_set(name, labels);
        let FamilyRef::Gauge(family) = self.lock().family(name, help, Kind::Gauge) else {
            unreachable!("`family` checks the kind")
        };
        Gauge(family.get_or_create(&labels).clone())
    }

    /// The histogram `name` (buckets [`DURATION_BUCKETS`]) with `labels`, created empty on
    /// first use. The first `help` given for a name is the one rendered.
    ///
    /// # Panics
    ///
    /// As [`Metrics::gauge`].
    pub fn histogram(
        &self,
        name: &'static str,
        help: &'static str,
        labels: &[(&'static str, &str)],
    ) -> Histogram {
        let labels = label_set(name, labels);
        let FamilyRef::Histogram(family) = self.lock().family(name, help, Kind::Histogram) else {
            unreachable!("`family` checks the kind")
        };
        Histogram(family.get_or_create(&labels).clone())
    }

    /// Every metric in the OpenMetrics text format, ending with `# EOF`.
    pub fn render(&self) -> String {
        self.shared
            .uptime
            .set(self.shared.started.elapsed().as_secs_f64());
        let inner = self.lock();
        let mut out = String::new();
        // Writing into a String cannot fail.
        encode(&mut out, &inner.registry).unwrap_or_else(|error| panic!("encoding: {error}"));
        out
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // Updates under the lock are single registrations, so a panic elsewhere leaves it valid.
        self.shared
            .inner
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

impl Counter {
    /// Adds one.
    pub fn inc(&self) {
        self.0.inc();
    }

    /// Adds `amount`.
    pub fn inc_by(&self, amount: u64) {
        self.0.inc_by(amount);
    }

    /// The current count.
    pub fn get(&self) -> u64 {
        self.0.get()
    }
}

impl Gauge {
    /// Sets the value.
    pub fn set(&self, value: f64) {
        self.0.set(value);
    }

    /// The current value.
    pub fn get(&self) -> f64 {
        self.0.get()
    }
}

impl Histogram {
    /// Records one value (for durations: seconds).
    pub fn observe(&self, value: f64) {
        self.0.observe(value);
    }
}

/// The value of one sample in an exposition, `series` being the part before the value, e.g.
/// `http_requests_total{path="/health",status="200"}` (labels sorted by name, as this crate
/// creates them); `name` also finds a series rendered as `name{}`.
pub fn sample_value(exposition: &str, series: &str) -> Option<f64> {
    exposition
        .lines()
        .filter(|line| !line.starts_with('#'))
        .find_map(|line| {
            let (line_series, value) = line.rsplit_once(' ')?;
            let line_series = line_series.strip_suffix("{}").unwrap_or(line_series);
            (line_series == series).then(|| value.parse().ok())?
        })
}

/// Label names and values, sorted by name.
type Labels = Vec<(String, String)>;
type HistogramFamily = Family<Labels, ClientHistogram, fn() -> ClientHistogram>;

struct Shared {
    started: Instant,
    uptime: ClientGauge<f64, AtomicU64>,
    inner: Mutex<Inner>,
}

struct Inner {
    registry: Registry,
    /// Every registered name; families are shared handles (the registry holds clones).
    families: BTreeMap<&'static str, FamilyRef>,
}

#[derive(Clone)]
enum FamilyRef {
    /// `app_info` and `process_uptime_seconds`.
    Reserved,
    Counter(Family<Labels, ClientCounter>),
    Gauge(Family<Labels, ClientGauge<f64, AtomicU64>>),
    Histogram(HistogramFamily),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Counter,
    Gauge,
    Histogram,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        }
    }
}

impl FamilyRef {
    fn kind(&self) -> Option<Kind> {
        match self {
            FamilyRef::Reserved => None,
            FamilyRef::Counter(_) => Some(Kind::Counter),
            FamilyRef::Gauge(_) => Some(Kind::Gauge),
            FamilyRef::Histogram(_) => Some(Kind::Histogram),
        }
    }
}

impl Inner {
    /// The family `name` of `kind`, registered on first use.
    fn family(&mut self, name: &'static str, help: &'static str, kind: Kind) -> FamilyRef {
        if let Some(existing) = self.families.get(name) {
            assert!(
                existing.kind() == Some(kind),
                "metric `{name}` is already {}, not a {}",
                existing
                    .kind()
                    .map_or("reserved".to_owned(), |k| format!("a {}", k.as_str())),
                kind.as_str()
            );
            return existing.clone();
        }
        let help = help.trim_end_matches('.');
        let family = match kind {
            Kind::Counter => {
                let family = Family::<Labels, ClientCounter>::default();
                // The encoder appends `_total` to counter names.
                let base = name.strip_suffix("_total").unwrap_or(name);
                self.registry.register(base, help, family.clone());
                FamilyRef::Counter(family)
            }
            Kind::Gauge => {
                let family = Family::<Labels, ClientGauge<f64, AtomicU64>>::default();
                self.registry.register(name, help, family.clone());
                FamilyRef::Gauge(family)
            }
            Kind::Histogram => {
                let family: HistogramFamily = Family::new_with_constructor(new_histogram);
                self.registry.register(name, help, family.clone());
                FamilyRef::Histogram(family)
            }
        };
        self.families.insert(name, family.clone());
        family
    }
}

fn new_histogram() -> ClientHistogram {
    ClientHistogram::new(DURATION_BUCKETS)
}

/// Checks the names and sorts the labels by name.
fn label_set(name: &str, labels: &[(&'static str, &str)]) -> Labels {
    assert!(is_metric_name(name), "invalid metric name `{name}`");
    let mut label_set: Labels = labels
        .iter()
        .map(|&(label, value)| {
            assert!(
                is_label_name(label),
                "invalid label name `{label}` on metric `{name}`"
            );
            (label.to_owned(), escape_label_value(value))
        })
        .collect();
    label_set.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    if let Some(pair) = label_set.windows(2).find(|pair| pair[0].0 == pair[1].0) {
        panic!("label `{}` repeated on metric `{name}`", pair[0].0);
    }
    label_set
}

/// prometheus-client 0.24 writes label values verbatim, so a `"`, `\` or newline in one would
/// break the exposition: they are escaped here, as the format requires (a test pins it).
fn escape_label_value(value: &str) -> String {
    let mut escaped = String::with_capacity(value.len());
    for character in value.chars() {
        match character {
            '\\' => escaped.push_str("\\\\"),
            '"' => escaped.push_str("\\\""),
            '\n' => escaped.push_str("\\n"),
            other => escaped.push(other),
        }
    }
    escaped
}

/// `[a-zA-Z_:][a-zA-Z0-9_:]*`.
fn is_metric_name(name: &str) -> bool {
    let mut characters = name.chars();
    characters
        .next()
        .is_some_and(|first| first.is_ascii_alphabetic() || first == '_' || first == ':')
        && characters.all(|other| other.is_ascii_alphanumeric() || other == '_' || other == ':')
}

/// `[a-zA-Z_][a-zA-Z0-9_]*`, not starting with `__` (reserved).
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
    fn renders_openmetrics_with_sorted_labels() {
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
        let text = render_without_uptime(&metrics);
        // Series of a family come in hash order: check lines, not the whole text.
        for line in [
            "# HELP app_info Name and version of the running app; the value is always 1.\n\
             # TYPE app_info gauge\n\
             app_info{name=\"api\",version=\"0.1.0\"} 1\n\
             # HELP process_uptime_seconds Seconds since the service started.\n\
             # TYPE process_uptime_seconds gauge\n\
             process_uptime_seconds <uptime>\n\
             # HELP http_requests HTTP requests answered.\n\
             # TYPE http_requests counter\n",
            "\nhttp_requests_total{path=\"/health\",status=\"200\"} 3\n",
            "\nhttp_requests_total{path=\"/health\",status=\"503\"} 1\n",
            "# HELP queue_depth Jobs waiting.\n# TYPE queue_depth gauge\nqueue_depth{} 2.5\n# EOF\n",
        ] {
            assert!(text.contains(line), "missing {line:?} in\n{text}");
        }
        assert!(text.starts_with("# HELP app_info"), "{text}");
        assert_eq!(sample_value(&text, "queue_depth"), Some(2.5));
    }

    #[test]
    fn histograms_count_observations_per_bucket() {
        let metrics = Metrics::new("api", "0.1.0");
        let histogram = metrics.histogram("took_seconds", "Took.", &[("path", "/a")]);
        for value in [0.001, 0.2, 0.2, 3.0] {
            histogram.observe(value);
        }
        let text = metrics.render();
        let bucket = |le: &str| {
            sample_value(
                &text,
                &format!("took_seconds_bucket{{le=\"{le}\",path=\"/a\"}}"),
            )
        };
        assert_eq!(bucket("0.005"), Some(1.0), "{text}");
        assert_eq!(bucket("0.1"), Some(1.0), "{text}");
        assert_eq!(bucket("0.25"), Some(3.0), "{text}");
        assert_eq!(bucket("2.5"), Some(3.0), "{text}");
        assert_eq!(bucket("5.0"), Some(4.0), "{text}");
        assert_eq!(bucket("+Inf"), Some(4.0), "{text}");
        assert_eq!(
            sample_value(&text, "took_seconds_count{path=\"/a\"}"),
            Some(4.0)
        );
        let sum = sample_value(&text, "took_seconds_sum{path=\"/a\"}").unwrap();
        assert!((sum - 3.401).abs() < 1e-9, "{sum}");
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
    fn escapes_label_values() {
        let metrics = Metrics::new("a\"b", "1\\2\n3");
        let text = metrics.render();
        assert!(
            text.contains("app_info{name=\"a\\\"b\",version=\"1\\\\2\\n3\"} 1\n"),
            "{text}"
        );
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
        assert!(is_label_name("path"));
        assert!(!is_label_name("__name__"));
        assert!(!is_label_name("a:b"));
    }

    #[test]
    fn misuse_is_a_panic_naming_the_metric() {
        let metrics = Metrics::new("api", "0.1.0");
        metrics.counter("jobs_total", "Jobs.", &[]);
        let messages: Vec<String> = [
            std::panic::catch_unwind(|| {
                metrics.gauge("jobs_total", "Jobs.", &[]);
            }),
            std::panic::catch_unwind(|| {
                metrics.gauge("bad-name", "Bad.", &[]);
            }),
            std::panic::catch_unwind(|| {
                metrics.gauge("g", "G.", &[("a", "1"), ("a", "2")]);
            }),
            std::panic::catch_unwind(|| {
                metrics.counter("jobs", "Jobs.", &[]);
            }),
            std::panic::catch_unwind(|| {
                metrics.gauge(APP_INFO, "Mine.", &[]);
            }),
        ]
        .into_iter()
        .map(|result| {
            let payload = result.unwrap_err();
            payload
                .downcast_ref::<String>()
                .cloned()
                .unwrap_or_default()
        })
        .collect();
        assert_eq!(
            messages,
            [
                "metric `jobs_total` is already a counter, not a gauge",
                "invalid metric name `bad-name`",
                "label `a` repeated on metric `g`",
                "counter `jobs` must end in `_total`",
                "metric `app_info` is already reserved, not a gauge",
            ]
        );
    }
}
